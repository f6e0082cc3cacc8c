"""Plotly figures of a stored study and the HTML report."""

from __future__ import annotations

from hadanas.dashboards._data import ParetoData, pareto_data, study_objectives
from hadanas.dashboards._figures import pareto_figure
from hadanas.dashboards._report import report_html, write_report

__all__ = [
    "ParetoData",
    "pareto_data",
    "pareto_figure",
    "report_html",
    "study_objectives",
    "write_report",
]
