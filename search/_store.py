"""The study store: Optuna RDB storage (SQLite by default, PostgreSQL for clusters).

What hadanas records (any Optuna tool reads it unchanged):

* study user attrs: ``hadanas_version``, ``space``, ``dataset``, ``objectives``,
  ``config`` (the search config, storage URL masked), ``artifact_dir``, ``created_at``.
* trial values: the objectives, in the order of ``objectives``.
* trial user attrs: ``spec`` (ArchSpec dict), ``fingerprint``, ``params``, ``flops``,
  ``latency_ms``, ``val_accuracy``, ``history`` (per-epoch val accuracy), ``epochs``,
  ``status`` (``trained`` | ``stopped_early`` | ``infeasible`` | ``duplicate``),
  ``duplicate_of``, ``constraints``, ``device``, ``node_id``, ``wall_time_s``,
  ``weights_artifact``, ``fail_reason``, ``attempt``.
"""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import optuna
from optuna.storages import RDBStorage

from hadanas.exceptions import ConfigError, StoreError, close_matches

__all__ = [
    "DEFAULT_STORAGE",
    "open_storage",
    "mask_url",
    "latest_study_name",
    "load_study",
    "default_artifact_dir",
    "sqlite_path",
]

DEFAULT_STORAGE = "sqlite:///hadanas.db"


def mask_url(url: str) -> str:
    """The URL with any password (``user:password@`` or ``?password=``) replaced by ``***``."""
    url = re.sub(r"(://[^:/@]*:)([^@/]*)(@)", r"\1***\3", str(url))
    return re.sub(r"([?&](?:password|pass|pwd)=)([^&#]*)", r"\1***", url, flags=re.I)


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL (None for other backends or in-memory)."""
    if not url.startswith("sqlite:"):
        return None
    path = url.split(":///", 1)[1] if ":///" in url else ""
    path = path.split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


def open_storage(url: str = DEFAULT_STORAGE, *, create: bool = True) -> RDBStorage:
    """Open (and create the tables of) the RDB storage at ``url``.

    SQLite runs in WAL mode with a 60 s busy timeout, so readers (dashboards) never block
    the writer and a few local writers never fail with "database is locked".
    """
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(
            f"storage must be a database URL such as {DEFAULT_STORAGE}, but got {url!r}."
        )
    scheme = urlsplit(url).scheme
    kwargs: dict[str, Any] = {}
    db = sqlite_path(url)
    if scheme.startswith("sqlite"):
        if db is not None:
            if not create and not db.exists():
                raise StoreError(
                    f"no study store at '{db}'. Run 'hadanas search' first, or pass "
                    "--storage with the URL of an existing store."
                )
            if db.parent and not db.parent.exists():
                raise ConfigError(f"storage directory '{db.parent}' does not exist.")
            try:
                con = sqlite3.connect(db, timeout=60)
                con.execute("PRAGMA journal_mode=WAL")
                con.close()
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"'{db}' is not a usable SQLite database: {exc}.") from None
        kwargs = {"connect_args": {"timeout": 60}}
    elif scheme.startswith("postgresql"):
        kwargs = {"pool_pre_ping": True}
    try:
        storage = _create_rdb(url, kwargs)
        if scheme.startswith("sqlite"):
            _tune_sqlite(storage)
        return storage
    except ImportError as exc:
        raise ConfigError(
            f"the storage driver for '{scheme}' is not installed ({exc}). For PostgreSQL: "
            "pip install 'hadanas[postgres]' and use postgresql+psycopg://..."
        ) from None
    except Exception as exc:  # SQLAlchemy: bad URL, unreachable server, bad credentials
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreError(f"cannot open storage '{mask_url(url)}': {first[:300]} (expected sqlite:///PATH "
                         "or postgresql+psycopg://USER@HOST/DB)") from None


def _create_rdb(url: str, kwargs: dict[str, Any], attempts: int = 5) -> RDBStorage:
    """RDBStorage, retried when another process is creating the same new schema right now
    (both see no tables, one wins the race to write the schema version)."""
    import time

    for i in range(attempts):
        try:
            return RDBStorage(url, engine_kwargs=kwargs)
        except Exception as exc:
            racing = any(w in str(exc) for w in ("UNIQUE constraint failed", "already exists",
                                                  "duplicate key", "database is locked"))
            if not racing or i == attempts - 1:
                raise
            time.sleep(0.2 * (i + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def _tune_sqlite(storage: RDBStorage) -> None:
    """Every connection: WAL journal, synchronous=NORMAL (durable across process crashes in
    WAL mode; only an OS crash can drop the last commits), and a busy timeout."""
    from sqlalchemy import event

    @event.listens_for(storage.engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    storage.engine.dispose()  # connections made before the listener get the pragmas too


def latest_study_name(storage: RDBStorage) -> str:
    """The most recently created study in the store."""
    studies = storage.get_all_studies()
    if not studies:
        raise StoreError("the store has no study yet. Run 'hadanas search' first.")
    return max(studies, key=lambda s: s._study_id).study_name


def load_study(storage: RDBStorage, name: str | None) -> optuna.Study:
    """Load study ``name``, or the most recent one when ``name`` is None."""
    if name is None:
        name = latest_study_name(storage)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in storage.get_all_studies()]
        raise StoreError(
            f"no study named '{name}' in the store." + close_matches(name, names)
            + (f" Studies: {', '.join(names[-10:])}." if names else " The store is empty.")
        ) from None


def default_artifact_dir(url: str) -> Path:
    """Where trial weights go: beside a SQLite file, else ./hadanas-artifacts."""
    db = sqlite_path(url)
    if db is not None:
        return (db.parent if str(db.parent) else Path(".")).resolve() / f"{db.stem}-artifacts"
    return Path(os.getcwd()).resolve() / "hadanas-artifacts"
