"""The library logger. Nothing is configured at import time; the CLI calls ``enable_cli_logging``."""

from __future__ import annotations

import logging
import sys

ROOT = "hadanas"


def get_logger(name: str) -> logging.Logger:
    if not name.startswith(ROOT):
        name = f"{ROOT}.{name}"
    return logging.getLogger(name)


def enable_cli_logging(level: int = logging.INFO) -> None:
    """Route hadanas log records to stderr as plain lines (used by the CLI only)."""
    root = logging.getLogger(ROOT)
    if any(getattr(h, "_hadanas_cli", False) for h in root.handlers):
        root.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._hadanas_cli = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
