"""The ``hadanas export`` verb: arguments and behaviour (wired into hadanas.cli)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(sub: Any, store_args: Callable[[argparse.ArgumentParser], None]) -> None:
    e = sub.add_parser("export", help="export a trial: spec, weights, TorchScript")
    store_args(e)
    e.add_argument("--trial", type=int, required=True, help="trial number (see 'hadanas pareto')")
    e.add_argument("--out", required=True, help="output directory")


def run(args: argparse.Namespace, open_study: Callable[[argparse.Namespace], Any]) -> int:
    import warnings

    from hadanas.search import export_trial

    study = open_study(args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = export_trial(study, args.trial, args.out)
    for kind, path in report.files.items():
        print(f"{kind:12s} {path}")
    for kind, diff in report.parity.items():
        status = "ok" if diff <= report.tolerance else "FAILED"
        print(f"parity {kind:12s} max |diff| = {diff:.2e} ({status})")
    return 0 if report.ok else 1
