"""Plotly figures of a stored study, the static HTML report and the live dashboard server."""

from __future__ import annotations

from hadanas.dashboards._app import Dashboard, build_payload, records_version
from hadanas.dashboards._data import (
    CellGraph,
    CompareData,
    FamilyData,
    HypervolumeData,
    ParallelData,
    ParetoData,
    TrialDetail,
    cell_graph,
    compare_data,
    export_command,
    family_data,
    hypervolume_data,
    parallel_data,
    pareto_data,
    reference_point,
    spec_ops,
    spec_summary,
    study_objectives,
    trial_detail,
)
from hadanas.dashboards._figures import (
    cell_graph_figure,
    compare_figure,
    family_figure,
    hypervolume_figure,
    ops_figure,
    parallel_figure,
    pareto_figure,
)
from hadanas.dashboards._records import StoreReader, StudyRecords, TrialRecord, records_from_study
from hadanas.dashboards._report import report_html, write_report
from hadanas.dashboards._server import DashboardServer, make_server

__all__ = [
    "CellGraph",
    "CompareData",
    "Dashboard",
    "DashboardServer",
    "FamilyData",
    "HypervolumeData",
    "ParallelData",
    "ParetoData",
    "StoreReader",
    "StudyRecords",
    "TrialDetail",
    "TrialRecord",
    "build_payload",
    "cell_graph",
    "cell_graph_figure",
    "compare_data",
    "compare_figure",
    "export_command",
    "family_data",
    "family_figure",
    "hypervolume_data",
    "hypervolume_figure",
    "make_server",
    "ops_figure",
    "parallel_data",
    "parallel_figure",
    "pareto_data",
    "pareto_figure",
    "records_from_study",
    "records_version",
    "reference_point",
    "report_html",
    "spec_ops",
    "spec_summary",
    "study_objectives",
    "trial_detail",
    "write_report",
]
