"""The early-warning stopper's per-batch loop, for the Ray worker and for offline replay alike.

    warner = OnlineWarner(spec.early_warning, make_predictor(spec.early_warning, db))
    for m in pop.run():
        for alarm in warner.observe(m):          # members newly alarmed at this batch
            ... is_shadow(f"{study}/{config_index}/{seed}", spec.early_warning.shadow_fraction)

The warner keeps each member's history of the rows the database keeps (full-metric batches and the
batch of an explosion), scores a member on each of its full-metric batches from `min_step` on, and
alarms it once, the first time its score reaches the threshold. A member's last full batch at or
before its explosion is the last one scored: after that the explosion criterion has spoken.
`sweeper warn eval` replays stored histories through this same class.

It takes the ephemeral engine's StepMetrics and the fast-weight families' FamilyStepMetrics alike:
each batch is mapped onto the predictors' roles by `signals.as_roles` (the one role table,
`signals.py`); the members' hyperparameters likewise (`signals.hyper_roles`). Given the study's
`model` (`signals.ModelSignals`), it refuses a predictor that cannot score that model, and names an
alarm's signals by the model's own metrics (grad_fast, fast_norm, ... for a family).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .history import History
from .predictors import Predictor, PredictorError
from .signals import ROLES, ModelSignals, RoleMetrics, as_roles, hyper_roles


@dataclass(frozen=True)
class Settings:
    """The fields of a study's EarlyWarningSpec that OnlineWarner reads (for callers without a study)."""

    min_step: int = 20
    threshold: float | None = None


@dataclass(frozen=True)
class Alarm:
    member: int
    """The member's index in the population as created (StepMetrics.member)."""
    step: int
    """The batch whose metrics raised it."""
    score: float
    signals: dict[str, float | None] = field(default_factory=dict)
    """What the predictor saw (strict JSON: non-finite values are None)."""

    def as_dict(self) -> dict:
        return {"member": self.member, "step": self.step, "score": self.score, "signals": dict(self.signals)}


class OnlineWarner:
    """Watches a population's StepMetrics and raises at most one Alarm per member.

    `hypers` (one mapping by role, or one Hyper / FastWeightsHyper / FWPHyper per member, in population
    order) is needed only by predictors that read hyperparameters. `threshold` defaults to the spec's,
    else the predictor's own. `model`: the members' model; without it each batch's own type decides
    the mapping (a batch with `fast_norm` is a family's) and nothing is refused up front. `chance_loss`:
    each member's task's ln V (one per member, for a replay of members of several studies); by default
    the model's (`ModelSignals.chance_loss`).
    """

    def __init__(self, early_warning, predictor: Predictor, *, hypers: Sequence | None = None,
                 model: ModelSignals | None = None, chance_loss: Sequence[float | None] | None = None):
        self.predictor = predictor
        self.model = model
        self.min_step = int(early_warning.min_step)
        self.threshold = float(early_warning.threshold if early_warning.threshold is not None
                               else predictor.threshold)
        if model is not None:
            reason = predictor.refusal(model)
            if reason is not None:
                raise PredictorError(reason)
        if getattr(predictor, "uses_hypers", False) and hypers is None:
            raise PredictorError(f"predictor {predictor.name!r} reads hyperparameters; pass hypers= to OnlineWarner")
        kind = model.kind if model is not None else None
        self._hypers = [hyper_roles(h, kind) for h in hypers] if hypers is not None else None
        self._chance = list(chance_loss) if chance_loss is not None else None
        self._model_chance = model.chance_loss if model is not None else None
        self.histories: dict[int, History] = {}
        self.alarmed: dict[int, Alarm] = {}
        self.max_score: dict[int, float] = {}
        """Highest score seen per member (over the batches it was scored on)."""
        self.scores: dict[int, list[tuple[int, float]]] = {}
        """(batch, score) per member, every time it was scored."""
        self._done: set[int] = set()

    def _history(self, member: int) -> History:
        h = self.histories.get(member)
        if h is None:
            hyper = self._hypers[member] if self._hypers is not None else None
            chance = self._chance[member] if self._chance is not None else self._model_chance
            h = self.histories[member] = History(member, hyper, chance)
        return h

    def observe(self, m) -> list[Alarm]:
        """Record one batch (StepMetrics, FamilyStepMetrics or RoleMetrics); return the alarms it raises
        (members alarmed for the first time)."""
        m: RoleMetrics = as_roles(m, self.model)
        to_score = []
        for r, member in enumerate(m.member):
            member = int(member)
            exploded = bool(m.exploded[r])
            if not (m.full or exploded) or member in self._done:
                continue
            self._history(member).append(m.step, m.full, exploded, {k: m.values[k][r] for k in ROLES})
            if exploded:
                self._done.add(member)  # scored on this batch if it is a full one, never after
            if m.full and m.step >= self.min_step and member not in self.alarmed:
                to_score.append(member)
        if not to_score:
            return []
        views = [self.histories[i].view() for i in to_score]
        scores = np.asarray(self.predictor.score_many(views), dtype=np.float64)
        alarms = []
        for member, view, score in zip(to_score, views, scores):
            score = float(score)
            self.scores.setdefault(member, []).append((m.step, score))
            self.max_score[member] = max(self.max_score.get(member, -math.inf), score)
            if score >= self.threshold:
                alarm = Alarm(member, m.step, score, self._named(self.predictor.signals(view)))
                self.alarmed[member] = alarm
                alarms.append(alarm)
        return alarms

    def _named(self, signals: dict[str, float | None]) -> dict[str, float | None]:
        """An alarm's signals under the model's own metric names (roles a model lacks are dropped)."""
        if self.model is None:
            return signals
        names = self.model.signals
        return {names.get(k, k): v for k, v in signals.items() if k not in ROLES or k in names}


def is_shadow(member_seed_key: str, fraction: float) -> bool:
    """Whether an alarmed member runs on anyway (shadow) instead of being stopped.

    Deterministic: the first 8 bytes of SHA-256(key) as a number in [0, 1), compared with `fraction`,
    so a study that is resumed or rerun shadows the same members (key e.g. "study/config_index/seed").
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"shadow fraction {fraction!r}; expected a number in [0, 1]")
    u = int.from_bytes(hashlib.sha256(member_seed_key.encode("utf-8")).digest()[:8], "big") / 2.0**64
    return u < fraction
