"""The ``hadanas export`` verb: arguments and behaviour (wired into hadanas.cli).

Exit codes: 0 every format written and within tolerance; 1 a format could not be written
or failed its parity check (each named on stdout); 2 a user error (unknown study, trial not
complete or infeasible, unknown format, missing optional exporter), as one line on stderr.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(sub: Any, store_args: Callable[[argparse.ArgumentParser], None]) -> None:
    e = sub.add_parser(
        "export", help="export a trial (or the whole front): spec, weights, TorchScript, ONNX, code",
        description="Write spec.json, weights.safetensors, model.pt (TorchScript), model.onnx, "
                    "model.py (torch-only code) and MODEL_CARD.md, and check that every format "
                    "gives the original module's outputs within 1e-5 on real inputs.")
    store_args(e)
    which = e.add_mutually_exclusive_group(required=True)
    which.add_argument("--trial", type=int, help="trial number (see 'hadanas pareto')")
    which.add_argument("--pareto", action="store_true",
                       help="export every Pareto-front member to OUT/trial-N, with OUT/index.json")
    e.add_argument("--out", required=True, help="output directory")
    e.add_argument("--formats", default="all",
                   help="comma-separated: torchscript,onnx,code (spec and safetensors are always "
                        "written; default all)")
    e.add_argument("--retrain-epochs", type=int, default=None, metavar="E",
                   help="train the architecture from scratch for E epochs on train+val, report "
                        "its test accuracy and export the retrained weights")
    e.add_argument("--seed", type=int, default=0, help="seed of the retraining (default 0)")
    e.add_argument("--tolerance", type=float, default=1e-5,
                   help="largest max |difference| of the logits a format may show (default 1e-5)")


def _print_report(report: Any) -> None:
    head = f"trial {report.trial}" if report.trial is not None else "model"
    print(f"{head} -> {report.out}")
    for kind, path in report.files.items():
        print(f"  {kind:12s} {path}")
    for kind, diff in report.parity.items():
        status = "ok" if diff <= report.tolerance else "FAILED"
        print(f"  parity {kind:12s} max |diff| = {diff:.2e} ({status})")
    if report.float32_noise is not None:
        print(f"  (the original's own float32 rounding here is {report.float32_noise:.2e})")
    for kind, why in report.failed.items():
        print(f"  {kind:19s} NOT WRITTEN: {why}")
    if report.test_accuracy is not None:
        how = (f"retrained {report.retrain['epochs']} epoch(s) on train+val" if report.retrain
               else "search weights")
        print(f"  test accuracy {report.test_accuracy:.4f} ({how})")
    print(f"  parity inputs: {report.inputs}")


def run(args: argparse.Namespace, open_study: Callable[[argparse.Namespace], Any]) -> int:
    import logging

    import optuna

    from hadanas._logging import enable_cli_logging
    from hadanas.exceptions import ConfigError
    from hadanas.search._export import check_formats, export_pareto, export_trial

    formats = check_formats(args.formats)  # before opening anything: a bad flag fails fast
    if args.retrain_epochs is not None and args.retrain_epochs < 1:
        raise ConfigError(f"--retrain-epochs must be a positive integer, but got {args.retrain_epochs}.")
    if not args.tolerance > 0:
        raise ConfigError(f"--tolerance must be a positive number, but got {args.tolerance}.")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    enable_cli_logging(logging.WARNING)
    study = open_study(args)
    if args.pareto:
        result = export_pareto(study, args.out, formats, retrain_epochs=args.retrain_epochs,
                               seed=args.seed, tolerance=args.tolerance)
        for report in result.reports:
            _print_report(report)
        bad = [r.trial for r in result.reports if not r.ok]
        print(f"{len(result.reports)} front member(s) of study '{study.study_name}'; index "
              f"{result.index}" + (f"; FAILED: trials {bad}" if bad else "; all formats ok"))
        return 0 if result.ok else 1
    report = export_trial(study, args.trial, args.out, formats, retrain_epochs=args.retrain_epochs,
                          seed=args.seed, tolerance=args.tolerance)
    _print_report(report)
    if report.failed:
        keep = [f for f in formats if f not in report.failed and f not in ("spec", "safetensors")]
        print("  (to leave out what cannot be written: --formats " + (",".join(keep) or "spec") + ")")
    return 0 if report.ok else 1
