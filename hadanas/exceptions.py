"""Exceptions raised by hadanas.

Every error caused by user input derives from :class:`HadanasError`; the CLI turns it
into a one-line message and exit code 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "HadanasError",
    "SpecError",
    "ConfigError",
    "StoreError",
    "DatasetError",
    "TrialFailed",
    "close_matches",
]


class HadanasError(Exception):
    """Base class of errors a user can fix."""


class SpecError(HadanasError, ValueError):
    """An architecture spec is malformed."""


class ConfigError(HadanasError, ValueError):
    """A configuration value (CLI flag, YAML key, API argument) is invalid."""


class StoreError(HadanasError):
    """The study store does not hold what was asked for."""


class DatasetError(HadanasError):
    """A dataset is missing or malformed."""


class TrialFailed(Exception):
    """A trial could not produce a result (non-finite loss, op error); not fatal to the search."""


def close_matches(word: str, options: Iterable[str], n: int = 3) -> str:
    """Return ``" Did you mean 'a' or 'b'?"`` or an empty string."""
    found = difflib.get_close_matches(str(word), list(options), n=n, cutoff=0.5)
    if not found:
        return ""
    return " Did you mean " + " or ".join(repr(f) for f in found) + "?"
