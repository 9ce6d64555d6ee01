"""Study files: TOML read into typed, validated objects before anything runs.

`spec` holds the study file (`[search]`, `[space]`, `[execution]`, ...); `runfile` the run sections it
shares with `sweeper train` (`[task]`, `[model]`, `[train]`).
"""

from sweeper.study.spec import (
    FAMILY_AXES,
    HYPER_AXES,
    OBJECTIVE_METRICS,
    Axis,
    EarlyWarningSpec,
    Execution,
    Objective,
    Search,
    StudyError,
    StudySpec,
    axes_of,
    load_study,
    parse_study,
    study_from_dict,
)

__all__ = [
    "FAMILY_AXES", "HYPER_AXES", "OBJECTIVE_METRICS", "Axis", "EarlyWarningSpec", "Execution", "Objective", "Search",
    "StudyError", "StudySpec", "axes_of", "load_study", "parse_study", "study_from_dict",
]
