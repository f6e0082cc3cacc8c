"""The ``hadanas dashboard`` verb: arguments and behaviour (wired into hadanas.cli)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from hadanas.exceptions import ConfigError

__all__ = ["add_parser", "run"]


def _reference(text: str) -> list[float]:
    try:
        return [float(x.replace("_", "")) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers such as 0,2e7, got {text!r}") from None


def add_parser(sub: Any, store_args: Callable[[argparse.ArgumentParser], None]) -> None:
    d = sub.add_parser(
        "dashboard", help="write the study's HTML dashboard, or serve it live",
        description="Write a self-contained HTML dashboard of a study (opens offline), or "
                    "serve it on a local port, refreshing while a search runs.")
    store_args(d)
    d.add_argument("--out", default=None,
                   help="output HTML file (default report.html; with --serve, only when given)")
    d.add_argument("--serve", action="store_true", help="serve a live dashboard instead")
    d.add_argument("--host", default="127.0.0.1",
                   help="address to bind with --serve (default 127.0.0.1: this machine only)")
    d.add_argument("--port", type=int, default=8765, help="port for --serve (default 8765; 0: any free)")
    d.add_argument("--interval", type=float, default=2.0,
                   help="seconds between the live page's refresh checks (default 2)")
    d.add_argument("--compare", nargs="+", metavar="STUDY", default=[],
                   help="studies in the same store whose fronts to overlay (ablation view)")
    d.add_argument("--reference", type=_reference, default=None, metavar="V1,V2,...",
                   help="hypervolume reference point, one value per objective in natural units "
                        "(default: accuracy 0, others 10%% beyond the worst value seen)")


def run(args: argparse.Namespace, open_study: Callable[[argparse.Namespace], Any]) -> int:
    from hadanas.search import DEFAULT_STORAGE, open_storage

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be in 0..65535, but got {args.port}.")
    if not args.interval > 0:
        raise ConfigError(f"--interval must be a positive number of seconds, but got {args.interval}.")
    study = open_study(args)  # resolves the name (or the latest study) with helpful errors
    compare = [open_study(argparse.Namespace(**{**vars(args), "study": name})) for name in args.compare]
    if args.reference is not None and len(args.reference) != len(study.directions):
        raise ConfigError(f"--reference must have {len(study.directions)} values (one per "
                          f"objective), but got {len(args.reference)}.")
    url = args.storage or DEFAULT_STORAGE
    if args.out is not None or not args.serve:
        from hadanas.dashboards._records import StoreReader
        from hadanas.dashboards._report import write_report

        storage = open_storage(url, create=False)
        reader = StoreReader(storage, study.study_name)
        others = [StoreReader(storage, c.study_name).read() for c in compare]
        path = write_report(reader.read(specs=True), args.out or "report.html", others,
                            args.reference, url, reader.full_trial)
        print(f"wrote {path}")
    if not args.serve:
        return 0
    from hadanas.dashboards._app import Dashboard
    from hadanas.dashboards._server import is_loopback, make_server

    app = Dashboard(open_storage(url, create=False), study.study_name,
                    [c.study_name for c in compare], args.reference, url, args.interval)
    if not is_loopback(args.host):
        print(f"warning: serving on {args.host}, reachable from other machines; the dashboard "
              "has no authentication. Use --host 127.0.0.1 to keep it local.", file=sys.stderr)
    try:
        server = make_server(app, args.host, args.port)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}. "
                          "Pick another --port (0: any free port).") from None
    print(f"serving study '{study.study_name}' at {server.url} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()
    return 0
