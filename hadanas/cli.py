"""The ``hadanas`` command line: a thin layer that turns flags into library calls."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from hadanas.exceptions import ConfigError, HadanasError

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2) instead of a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _float(text: str) -> float:
    try:
        return float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _store_args(p: argparse.ArgumentParser, search: bool = False) -> None:
    p.add_argument("--storage", default=None, help="study store URL (default sqlite:///hadanas.db)")
    p.add_argument("--study", default=None, help=(
        "study name (default: a new <space>-<dataset>-<time>; with --resume the most recent)"
        if search else "study name (default: the most recent study)"))


def _build() -> argparse.ArgumentParser:
    parser = _Parser(prog="hadanas", description=(
        "Multi-objective neural architecture search with Hadamard-product primitives."))
    from hadanas import __version__

    parser.add_argument("--version", action="version", version=f"hadanas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    s = sub.add_parser("search", help="run (or resume) an architecture search",
                       description="Run an architecture search; every flag is also a YAML key.")
    s.add_argument("--config", help="YAML file with the same keys as these flags")
    s.add_argument("--space", help="search space (default full; see 'hadanas spaces')")
    s.add_argument("--dataset", help=(
        "dataset: digits (default), fashion-mnist, mfeat (image + vector, for --space fusion), "
        "mfeat-pix, folder:PATH (a sub-folder of images per class) or npz:PATH"))
    s.add_argument("--trials", type=int, help="completed trials wanted (default 32)")
    s.add_argument("--epochs", type=int, help="training epochs per trial (default 3)")
    s.add_argument("--objectives", help="comma-separated: accuracy,flops,params,latency (default accuracy,flops)")
    s.add_argument("--sampler", help="auto | nsga2 | local | tpe | random (default auto: NSGA-II with several objectives, local search with one)")
    s.add_argument("--seed", type=int, help="search seed (default 0)")
    _store_args(s, search=True)
    s.add_argument("--ray-address", help="attach to a Ray cluster: auto or HOST:PORT (default: local)")
    s.add_argument("--max-concurrent", type=int, help="trials running at once (default 2)")
    s.add_argument("--cpus-per-trial", type=_float, help="CPUs per trial (default 1)")
    s.add_argument("--gpus-per-trial", type=_float, help="GPUs per trial, fractions allowed (default 0)")
    s.add_argument("--out", help="directory for the report (default hadanas-out)")
    s.add_argument("--artifacts", help="directory for trial weights (default beside the SQLite file)")
    s.add_argument("--max-flops", type=_float, help="never train specs above this many FLOPs")
    s.add_argument("--max-params", type=_float, help="never train specs above this many parameters")
    s.add_argument("--max-retries", type=int, help="retries of a trial whose worker died (default 2)")
    s.add_argument("--resume", action="store_true", default=None,
                   help="continue the study (default: the most recent one)")
    s.add_argument("--subset", type=int, help="use N samples of the dataset")
    s.add_argument("--batch-size", type=int, help="training batch size (default 128)")
    s.add_argument("--lr", type=_float, help="learning rate (default 0.01)")
    s.add_argument("--precision", help=(
        "Lightning precision: 32-true (default), bf16-mixed, 16-mixed, 64-true, or auto "
        "(bf16-mixed on a GPU that supports it, else 32-true)"))
    s.add_argument("--weight-decay", type=_float, help="AdamW weight decay (default 1e-4)")
    s.add_argument("--devices", help=(
        "devices per trial: a count, -1 (all the trial has) or auto (default 1); "
        "more than one trains the trial with DDP"))
    s.add_argument("--strategy", help=(
        "Lightning strategy of a trial: auto (default; ddp_spawn when devices > 1), ddp "
        "(runs as ddp_spawn inside Ray), ddp_spawn, ddp_fork, fsdp, ..."))
    s.add_argument("--population", type=int, help="NSGA-II population size (default trials/4, 8..50)")
    s.add_argument("--early-stopping", action="store_true", default=None,
                   help="ASHA early stopping on per-epoch validation accuracy")
    s.add_argument("--eta", type=int, help="ASHA reduction factor (default 3)")
    s.add_argument("--min-epochs", type=int, help="ASHA first rung, in epochs (default 1)")
    s.add_argument("--benchmark-file", help="NAS-Bench-201 CSV: look trials up instead of training "
                   "(with --space nb201)")
    s.add_argument("--quiet", action="store_true", help="no progress lines")

    ab = sub.add_parser("ablate", help="run the operator-family ablation (same budget per space)",
                        description="Run the same search budget on the complete space, the "
                        "conventional baseline and each no-<family> space, over several seeds, "
                        "each into its own study 'ablate-<dataset>-<space>-s<seed>' of one store; "
                        "print each space's hypervolume and the operator families on the complete "
                        "space's fronts, and write the overlaid fronts to OUT/ablation.html. "
                        "Rerunning skips the studies already complete.")
    ab.add_argument("--config", help="YAML file of search keys (the flags below override it)")
    ab.add_argument("--dataset", help="dataset (default digits; mfeat uses the fusion spaces)")
    ab.add_argument("--spaces", help="comma-separated spaces (default: full or fusion, its "
                    "conventional baseline and every no-<family> variant)")
    ab.add_argument("--seeds", type=int, default=3, help="search seeds per space (default 3)")
    ab.add_argument("--seed", type=int, help="first search seed (default 0)")
    ab.add_argument("--trials", type=int, help="completed trials per study (default 32)")
    ab.add_argument("--epochs", type=int, help="training epochs per trial (default 3)")
    ab.add_argument("--objectives", help="accuracy and one or more costs (default accuracy,flops)")
    ab.add_argument("--sampler", help="auto | nsga2 | local | tpe | random (default auto: NSGA-II with several objectives, local search with one)")
    ab.add_argument("--storage", default=None, help="study store URL (default sqlite:///hadanas.db)")
    ab.add_argument("--out", help="directory for ablation.html and ablation.json (default hadanas-out)")
    ab.add_argument("--artifacts", help="directory for trial weights (default beside the SQLite file)")
    ab.add_argument("--max-concurrent", type=int, help="trials running at once (default 2)")
    ab.add_argument("--cpus-per-trial", type=_float, help="CPUs per trial (default 1)")
    ab.add_argument("--gpus-per-trial", type=_float, help="GPUs per trial (default 0)")
    ab.add_argument("--ray-address", help="attach to a Ray cluster: auto or HOST:PORT (default: local)")
    ab.add_argument("--subset", type=int, help="use N samples of the dataset")
    ab.add_argument("--batch-size", type=int, help="training batch size (default 128)")
    ab.add_argument("--lr", type=_float, help="learning rate (default 0.01)")
    ab.add_argument("--population", type=int, help="NSGA-II population size (default trials/4, 8..50)")
    ab.add_argument("--json", action="store_true", help="print the summary as JSON")
    ab.add_argument("--verbose", action="store_true", help="a progress line per trial")
    ab.add_argument("--quiet", action="store_true", help="no progress lines")

    o = sub.add_parser("ops", help="list the registered operators")
    o.add_argument("--json", action="store_true", help="machine-readable output")
    o.add_argument("--channels", type=int, default=16, help="reference channels (default 16)")
    o.add_argument("--size", type=int, default=8, help="reference spatial size (default 8)")

    sp = sub.add_parser("spaces", help="list the named search spaces")
    sp.add_argument("--json", action="store_true", help="machine-readable output")

    pa = sub.add_parser("pareto", help="print the Pareto front of a stored study")
    _store_args(pa)
    pa.add_argument("--json", action="store_true", help="machine-readable output")

    from hadanas.dashboards import _cli as dashboard_cli
    from hadanas.search import _export_cli as export_cli

    dashboard_cli.add_parser(sub, _store_args)
    export_cli.add_parser(sub, _store_args)
    return parser


# --- commands -----------------------------------------------------------------------
def _storage_url(args: argparse.Namespace) -> str:
    from hadanas.search import DEFAULT_STORAGE

    return args.storage or DEFAULT_STORAGE


def _open(args: argparse.Namespace) -> Any:
    from hadanas.search import load_study, open_storage

    storage = open_storage(_storage_url(args), create=False)
    return load_study(storage, args.study)


def _front_rows(study: Any) -> tuple[list[str], list[list[str]], list[dict[str, Any]]]:
    from hadanas.dashboards import study_objectives
    from hadanas.search import front_trials
    from hadanas.search._objectives import format_value

    objectives = study_objectives(study)
    front = front_trials(study)
    maximize = study.directions[0].name == "MAXIMIZE"
    front.sort(key=lambda t: -t.values[0] if maximize else t.values[0])
    header = ["trial", *objectives, "params", "epochs", "architecture"]
    rows, records = [], []
    for t in front:
        a = t.user_attrs
        rows.append([str(t.number), *(format_value(o, v) for o, v in zip(objectives, t.values)),
                     format_value("params", a.get("params")), str(a.get("epochs", "-")),
                     str(a.get("summary", ""))])
        records.append({"trial": t.number, "values": dict(zip(objectives, t.values)),
                        "params": a.get("params"), "flops": a.get("flops"),
                        "latency_ms": a.get("latency_ms"), "epochs": a.get("epochs"),
                        "status": a.get("status"), "fingerprint": a.get("fingerprint"),
                        "spec": a.get("spec")})
    return header, rows, records


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    widths[-1] = len(header[-1])  # the last column is free text
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _check_writable_folder(folder: Path, flag: str) -> None:
    """Fail now if ``folder`` cannot be created or written; leave nothing behind."""
    made = []
    p = folder.absolute()
    while not p.exists() and p != p.parent:
        made.append(p)
        p = p.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".hadanas-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"{flag} '{folder}' cannot be created or written ({exc.strerror}); "
                          "pass a writable folder.") from None
    finally:
        for d in made:  # deepest first
            try:
                d.rmdir()
            except OSError:
                pass


def _new_paths(config: Any) -> tuple[Path | None, list[Path]]:
    """The SQLite store file (when new) and the paths beside it and the artifacts folder a
    search would create that do not exist yet."""
    from hadanas.search._store import default_artifact_dir, sqlite_path

    paths = []
    db = sqlite_path(config.storage)
    if db is not None:
        paths += [db, Path(f"{db}-wal"), Path(f"{db}-shm"), Path(f"{db}-journal")]
    if config.benchmark_file is None:  # the folder and its missing parents, deepest first
        art = (Path(config.artifacts) if config.artifacts else default_artifact_dir(config.storage)).resolve()
        while not art.exists() and art != art.parent:
            paths.append(art)
            art = art.parent
    new = [p.resolve() for p in paths if not p.exists()]
    return (db.resolve() if db is not None and db.resolve() in new else None), new


def _remove_if_unused(created: tuple[Path | None, list[Path]]) -> None:
    """Remove what a search that failed on bad input created: a new SQLite file without
    trials, empty folders. A file holding a trial stays."""
    import sqlite3

    db, paths = created
    if db is not None and db.is_file():
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
                tables = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
                stored = "trials" in tables and con.execute("select count(*) from trials").fetchone()[0]
            con.close()
        except sqlite3.Error:
            stored = True  # unreadable: keep it
        if not stored:
            for p in paths:
                if p.is_file():
                    p.unlink(missing_ok=True)
    for p in paths:
        if p.is_dir():
            try:
                p.rmdir()
            except OSError:
                pass


def _cmd_search(args: argparse.Namespace) -> int:
    from hadanas._logging import enable_cli_logging
    from hadanas.config import SearchConfig, load_yaml_config

    config = load_yaml_config(args.config) if args.config else SearchConfig()
    flags = {k: v for k, v in vars(args).items()
             if k not in ("command", "config", "quiet") and v is not None}
    config = SearchConfig.from_mapping(flags, config, source="command line")
    _check_writable_folder(Path(config.out), "--out")  # fail now, not after hours of search
    if config.benchmark_file is None and config.artifacts is not None:
        _check_writable_folder(Path(config.artifacts), "--artifacts")  # before the store is created
    import logging

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    enable_cli_logging(logging.WARNING if args.quiet else logging.INFO)
    from hadanas.dashboards import write_report
    from hadanas.search import load_study, open_storage, run_search

    created = _new_paths(config)
    try:
        result = run_search(config)
    except HadanasError:
        _remove_if_unused(created)  # bad input leaves nothing behind
        raise
    study = load_study(open_storage(config.storage), result.study_name)
    report = write_report(study, Path(config.out) / "report.html")
    header, rows, _ = _front_rows(study)
    if rows:
        print(f"\nPareto front of study '{result.study_name}' ({len(rows)} of {result.completed} "
              f"completed trials; {result.failed} failed):")
        print(_table(header, rows))
    else:
        print("\n" + _empty_front(study))
    best = f"{result.best_accuracy:.4f}" if result.best_accuracy is not None else "-"
    print(f"\nbest accuracy {best} | wall time {result.wall_time_s:.1f} s | report {report}")
    print(f"export one: hadanas export --study {result.study_name} --trial N --out DIR")
    return 0


def _cmd_ablate(args: argparse.Namespace) -> int:
    import logging

    from hadanas._logging import enable_cli_logging
    from hadanas.config import SearchConfig, load_yaml_config

    if not 1 <= args.seeds <= 100:
        raise ConfigError(f"--seeds must be in 1..100, but got {args.seeds}.")
    spaces = None
    if args.spaces is not None:
        spaces = [s.strip() for s in args.spaces.split(",") if s.strip()]
        if not spaces:
            raise ConfigError("--spaces must name at least one space (see 'hadanas spaces').")
    config = load_yaml_config(args.config) if args.config else SearchConfig()
    flags = {k: v for k, v in vars(args).items()
             if k not in ("command", "config", "quiet", "verbose", "json", "seeds", "spaces")
             and v is not None}
    config = SearchConfig.from_mapping(flags, config, source="command line")
    if config.study is not None or config.resume:
        raise ConfigError("an ablation names its own studies (ablate-<dataset>-<space>-s<seed>); "
                          "drop 'study' and 'resume' (rerunning resumes by itself).")
    _check_writable_folder(Path(config.out), "--out")
    if config.artifacts is not None:
        _check_writable_folder(Path(config.artifacts), "--artifacts")
    import optuna

    from hadanas.search._ablate import format_ablation, run_ablation

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    enable_cli_logging(logging.INFO if args.verbose else logging.WARNING)
    say = None if args.quiet or args.json else (lambda m: print(m, flush=True))
    seeds = list(range(config.seed, config.seed + args.seeds))
    res = run_ablation(config, seeds, spaces, out=config.out, progress=say)
    if args.json:
        print(json.dumps(res.to_dict(), indent=2, allow_nan=False))
        return 0
    print("\n" + format_ablation(res))
    print(f"\nwall time {res.wall_time_s:.1f} s | overlaid fronts {res.report} | "
          f"summary {Path(config.out) / 'ablation.json'}")
    return 0


def _cmd_ops(args: argparse.Namespace) -> int:
    import torch

    from hadanas.spaces import count_flops, count_params, default_registry

    if not 1 <= args.channels <= 4096 or not 1 <= args.size <= 1024:
        raise ConfigError("--channels must be in 1..4096 and --size in 1..1024.")
    C, S = args.channels, args.size
    records = []
    torch.manual_seed(0)
    for info in default_registry.infos():
        op = default_registry.create(info.name, C, 1)

        class _Wrap(torch.nn.Module):
            def __init__(self, m: torch.nn.Module, arity: int) -> None:
                super().__init__()
                self.m, self.arity = m, arity

            def forward(self, *xs: torch.Tensor) -> torch.Tensor:
                return self.m(*xs[: self.arity])

        w = _Wrap(op, info.arity)
        shapes = [(C, S, S)] * info.arity
        records.append({
            "name": info.name, "family": info.family, "arity": info.arity,
            "knobs": {k: list(v) for k, v in info.knobs.items()},
            "params": count_params(op), "flops": count_flops(w, shapes),
            "near_identity": info.near_identity, "description": info.description,
        })
    if args.json:
        print(json.dumps({"reference": {"channels": C, "height": S, "width": S, "batch": 1,
                                        "knobs": "first choice of each"}, "ops": records}, indent=2))
        return 0
    print(f"Operators (params and FLOPs at C={C}, {S}x{S}, batch 1, first knob choices):")
    header = ["name", "family", "arity", "params", "flops", "knobs", "description"]
    rows = [[r["name"], r["family"], str(r["arity"]), str(r["params"]), str(r["flops"]),
             ",".join(f"{k}={'/'.join(map(str, v))}" for k, v in r["knobs"].items()) or "-",
             r["description"]] for r in records]
    print(_table(header, rows))
    return 0


def _cmd_spaces(args: argparse.Namespace) -> int:
    from hadanas.spaces import get_space, list_spaces

    records = []
    for name in list_spaces():
        s = get_space(name)
        records.append({"name": name, "size": s.size(), "families": s.families(),
                        "edge_ops": list(s.edge_ops), "combines": list(s.combines),
                        "inputs": list(s.inputs), "description": s.description})
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    rows = [[r["name"], f"{r['size']:.3g}" if r["size"] > 1e6 else str(r["size"]),
             str(len(r["edge_ops"])), ",".join(r["families"]), r["description"]] for r in records]
    print(_table(["space", "architectures", "edge ops", "families", "description"], rows))
    return 0


def _empty_front(study: Any) -> str:
    """One line saying why a study has no Pareto front yet."""
    from collections import Counter

    from optuna.trial import TrialState

    states = Counter(t.state for t in study.get_trials(deepcopy=False))
    done = states.pop(TrialState.COMPLETE, 0)
    names = {TrialState.RUNNING: "running", TrialState.WAITING: "waiting", TrialState.FAIL: "failed",
             TrialState.PRUNED: "pruned"}
    others = ", ".join(f"{n} {names.get(s, s.name.lower())}" for s, n in states.items() if n)
    if done:
        return (f"study '{study.study_name}' has no Pareto front: none of its {done} completed trial(s) "
                "is feasible with finite objectives (over --max-flops/--max-params, or non-finite values)"
                + (f"; {others}" if others else "") + ".")
    return (f"study '{study.study_name}' has no completed trials yet"
            + (f" ({others})" if others else " (no trials at all)")
            + "; its Pareto front is empty. Run or resume 'hadanas search' to add some.")


def _cmd_pareto(args: argparse.Namespace) -> int:
    study = _open(args)
    header, rows, records = _front_rows(study)
    if args.json:
        print(json.dumps({"study": study.study_name, "objectives": header[1:-3],
                          "front": records}, indent=2))
        return 0
    if not rows:
        print(_empty_front(study))
        return 0
    print(f"Pareto front of study '{study.study_name}' ({len(rows)} trials):")
    print(_table(header, rows))
    return 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from hadanas.dashboards import _cli as dashboard_cli

    return dashboard_cli.run(args, _open)


def _cmd_export(args: argparse.Namespace) -> int:
    from hadanas.search import _export_cli as export_cli

    return export_cli.run(args, _open)


_COMMANDS = {"search": _cmd_search, "ablate": _cmd_ablate, "ops": _cmd_ops, "spaces": _cmd_spaces,
             "pareto": _cmd_pareto, "dashboard": _cmd_dashboard, "export": _cmd_export}


def _one_line(message: str) -> str:
    """Control characters from user-given names (a newline in a study name) escaped, so that an
    error stays one line."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in message.strip())


_TERMINATED: list[bool] = []


def _on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM (a scheduler or ``kill``): stop as Ctrl-C does, running trials marked failed."""
    _TERMINATED.append(True)  # the interrupt may be re-raised as a plain one on its way up
    raise KeyboardInterrupt()


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command in ("search", "ablate"):
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _COMMANDS[args.command](args)
    except HadanasError as exc:
        print(f"hadanas: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        except OSError:
            pass
        return 0
    except OSError as exc:  # a path the user gave: missing, a file, not writable
        where = f" '{exc.filename}'" if exc.filename else ""
        print(f"hadanas: error: cannot use{where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except RecursionError:
        print("hadanas: error: the input is nested too deeply.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        what = "terminated" if _TERMINATED else "interrupted"
        print(f"hadanas: {what}; completed trials are stored (continue with --resume).",
              file=sys.stderr)
        return 143 if _TERMINATED else 130
    except Exception as exc:
        if os.environ.get("HADANAS_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"hadanas: internal error: {type(exc).__name__}: {first} "
              "(set HADANAS_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
