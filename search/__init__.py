"""Study store, search strategies, Ray orchestration, Pareto fronts and export."""

from __future__ import annotations

from hadanas.search._export import (
    FORMATS,
    ExportReport,
    ParetoExport,
    check_formats,
    export_model,
    export_pareto,
    export_trial,
    load,
)
from hadanas.search._objectives import ATTR_OF, objective_values
from hadanas.search._pareto import hypervolume, pareto_mask, to_minimization
from hadanas.search._runner import (
    SearchResult,
    front_trials,
    make_sampler,
    release_workers,
    run_search,
)
from hadanas.search._store import (
    DEFAULT_STORAGE,
    default_artifact_dir,
    latest_study_name,
    load_study,
    mask_url,
    open_storage,
)

__all__ = [
    "FORMATS",
    "ExportReport",
    "ParetoExport",
    "check_formats",
    "export_model",
    "export_pareto",
    "export_trial",
    "load",
    "ATTR_OF",
    "DEFAULT_STORAGE",
    "SearchResult",
    "default_artifact_dir",
    "front_trials",
    "hypervolume",
    "latest_study_name",
    "load_study",
    "make_sampler",
    "mask_url",
    "objective_values",
    "open_storage",
    "pareto_mask",
    "release_workers",
    "run_search",
    "to_minimization",
]
