"""The ``hadanas dashboard`` verb: arguments and behaviour (wired into hadanas.cli)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(sub: Any, store_args: Callable[[argparse.ArgumentParser], None]) -> None:
    d = sub.add_parser("dashboard", help="write the study's HTML dashboard")
    store_args(d)
    d.add_argument("--out", default="report.html", help="output HTML file (default report.html)")


def run(args: argparse.Namespace, open_study: Callable[[argparse.Namespace], Any]) -> int:
    from hadanas.dashboards import write_report

    study = open_study(args)
    path = write_report(study, args.out)
    print(f"wrote {path}")
    return 0
