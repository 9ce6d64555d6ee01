"""Early warning: predict which members will explode, and stop them before they waste their budget.

    from sweeper.warn import ModelSignals, OnlineWarner, make_predictor, is_shadow
    warner = OnlineWarner(spec.early_warning, make_predictor(spec.early_warning, db),
                          model=ModelSignals.of_study(spec))
    alarms = warner.observe(step_metrics)      # list[Alarm], members newly alarmed at this batch

Predictors (`predictors.py`): the paper's gradient-ratio rule (default), the delta rule's transition
bound (fwp delta rules) and a learned, calibrated classifier fitted by `fit.py` (`sweeper warn fit`)
and stored in the trial database. `evaluate.py` (`sweeper warn eval`) replays finished studies
through OnlineWarner against baselines; `transfer.py` (`sweeper warn transfer`) fits on one study
and evaluates on others (another task, width, updater or `metrics_every`). Every model family is read
through one role table (`signals.py`: the fast-state gradient plays the ephemeral gradient's role, and
so on).
Importing this package loads numpy and the engine's metric types only (no torch, sklearn or SQL).
"""

from .online import Alarm, OnlineWarner, Settings, is_shadow
from .predictors import (
    LearnedPredictor,
    LossZScore,
    Predictor,
    PredictorError,
    RatioRule,
    TransitionBound,
    load_predictor,
    make_predictor,
)
from .signals import ModelSignals

__all__ = ["Alarm", "LearnedPredictor", "LossZScore", "ModelSignals", "OnlineWarner", "Predictor", "PredictorError",
           "RatioRule", "Settings", "TransitionBound", "is_shadow", "load_predictor", "make_predictor"]
