"""Early warning: predict which members will explode, and stop them before they waste their budget.

    from sweeper.warn import OnlineWarner, make_predictor, is_shadow
    warner = OnlineWarner(spec.early_warning, make_predictor(spec.early_warning, db))
    alarms = warner.observe(step_metrics)      # list[Alarm], members newly alarmed at this batch

Predictors (`predictors.py`): the paper's gradient-ratio rule (default) and a learned, calibrated
classifier fitted by `fit.py` (`sweeper warn fit`) and stored in the trial database. `evaluate.py`
(`sweeper warn eval`) replays finished studies through OnlineWarner against baselines.
Importing this package loads numpy and the engine's metric types only (no torch, sklearn or SQL).
"""

from .online import Alarm, OnlineWarner, Settings, is_shadow
from .predictors import (
    LearnedPredictor,
    LossZScore,
    Predictor,
    PredictorError,
    RatioRule,
    load_predictor,
    make_predictor,
)

__all__ = ["Alarm", "LearnedPredictor", "LossZScore", "OnlineWarner", "Predictor", "PredictorError", "RatioRule",
           "Settings", "is_shadow", "load_predictor", "make_predictor"]
