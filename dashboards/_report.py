"""A self-contained HTML report of a study (opens offline: plotly.js and the data are inlined)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import optuna
from plotly.offline import get_plotlyjs

from hadanas.dashboards._app import DETAIL_LIMIT, build_payload, payload_json
from hadanas.dashboards._page import page_html
from hadanas.dashboards._records import StudyRecords, TrialRecord, records_from_study

__all__ = ["write_report", "report_html"]

Study = optuna.Study | StudyRecords


def _rec(s: Study) -> StudyRecords:
    return s if isinstance(s, StudyRecords) else records_from_study(s)


def report_html(study: Study, compare: Sequence[Study] = (),
                reference: Sequence[float] | None = None, storage_url: str | None = None,
                full_trial: Callable[[int], TrialRecord] | None = None) -> str:
    """The report page: every view of the live dashboard, frozen.

    ``study`` must carry specs (an ``optuna.Study``, or ``StoreReader.read(specs=True)``
    with ``full_trial=reader.full_trial`` for complete trial details). Trial details are
    embedded for every trial of studies up to ``DETAIL_LIMIT`` trials, and for the
    front's trials beyond that.
    """
    main = _rec(study)
    details = "all" if len(main.trials) <= DETAIL_LIMIT else "front"
    payload = build_payload(main, [_rec(c) for c in compare], reference, storage_url, details=details,
                            full_trial=full_trial)
    payload["live"] = False
    return page_html(f"hadanas — {main.name}", get_plotlyjs(), {"live": False},
                     payload_json(payload))


def write_report(study: Study, path: str | Path, compare: Sequence[Study] = (),
                 reference: Sequence[float] | None = None, storage_url: str | None = None,
                 full_trial: Callable[[int], TrialRecord] | None = None) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(report_html(study, compare, reference, storage_url, full_trial), encoding="utf-8")
    return p
