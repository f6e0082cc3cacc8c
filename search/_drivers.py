"""Which search driver owns a RUNNING trial, and whether that driver is still alive.

Several drivers may run one study at once (many machines on one PostgreSQL study, or a few
processes on one SQLite file). ``--resume`` fails and queues again the trials a *dead* driver
left RUNNING; it must leave a live driver's trials alone. Every trial a driver asks for is
created with the system attr ``hadanas:driver`` = ``{"host", "pid", "start", "run"}`` (in the
same transaction as the trial), and the driver writes a heartbeat, the study system attr
``hadanas:beat:<run>`` = its wall-clock time, at least every :data:`BEAT_S` seconds.

A driver on this host is alive while its process exists with the same start time (a pid
reused by another process does not count) and, for this very process, while it is the
current run. A driver on another host is alive while its heartbeat is younger than
:data:`GRACE_S` (the hosts' clocks are assumed to agree to well within that).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from typing import Any

__all__ = ["BEAT_S", "GRACE_S", "DRIVER_KEY", "Heartbeat", "driver_identity", "driver_alive"]

DRIVER_KEY = "hadanas:driver"
BEAT_PREFIX = "hadanas:beat:"
#: A driver writes its heartbeat at least this often (seconds) while trials run.
BEAT_S = 20.0
#: A driver on another host whose heartbeat is older than this (seconds) is taken for dead.
GRACE_S = 300.0


def _process_start(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), else None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return int(stat[stat.rindex(b")") + 2:].split()[19])  # field 22: starttime
    except (OSError, ValueError, IndexError):
        return None


def _pid_exists(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def driver_identity() -> dict[str, Any]:
    """This process as the driver of one search run."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start": _process_start(pid),
            "run": uuid.uuid4().hex[:12]}


def driver_alive(driver: Any, beats: dict[str, Any], me: dict[str, Any],
                 now: float | None = None) -> bool:
    """Whether the driver recorded on a trial is still running (see the module)."""
    if not isinstance(driver, dict) or not isinstance(driver.get("pid"), int):
        return False  # no owner recorded: a trial of an older version or a broken record
    if driver.get("host") == me["host"]:
        if driver["pid"] == me["pid"] and driver.get("start") == me["start"]:
            return driver.get("run") == me["run"]  # this process: only its current run is live
        if not _pid_exists(driver["pid"]):
            return False
        start = driver.get("start")
        return start is None or _process_start(driver["pid"]) in (None, start)
    beat = beats.get(BEAT_PREFIX + str(driver.get("run")))
    if not isinstance(beat, (int, float)):
        return False
    return (time.time() if now is None else now) - float(beat) < GRACE_S


class Heartbeat:
    """Writes this run's heartbeat to the study at most every ``every`` seconds."""

    def __init__(self, study: Any, me: dict[str, Any], every: float = BEAT_S) -> None:
        self.study = study
        self.key = BEAT_PREFIX + me["run"]
        self.every = every
        self.last = -1e18

    def __call__(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.every:
            return
        self.last = now
        try:
            self.study._storage.set_study_system_attr(self.study._study_id, self.key, time.time())
        except Exception:  # a store hiccup must not stop the search; the next beat retries
            self.last = now - self.every
