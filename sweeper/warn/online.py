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
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from sweeper.engine.metrics import EVERY_STEP_NAMES, METRIC_NAMES, StepMetrics

from .history import History
from .predictors import Predictor, PredictorError


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

    `hypers` (one mapping or Hyper per member, in population order) is needed only by predictors that
    read hyperparameters. `threshold` defaults to the spec's, else the predictor's own.
    """

    def __init__(self, early_warning, predictor: Predictor, *, hypers: Sequence | None = None):
        self.predictor = predictor
        self.min_step = int(early_warning.min_step)
        self.threshold = float(early_warning.threshold if early_warning.threshold is not None
                               else predictor.threshold)
        if getattr(predictor, "uses_hypers", False) and hypers is None:
            raise PredictorError(f"predictor {predictor.name!r} reads hyperparameters; pass hypers= to OnlineWarner")
        self._hypers = [_hyper_dict(h) for h in hypers] if hypers is not None else None
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
            h = self.histories[member] = History(member, hyper)
        return h

    def observe(self, m: StepMetrics) -> list[Alarm]:
        """Record one batch; return the alarms it raises (members alarmed for the first time)."""
        to_score = []
        for r, member in enumerate(m.member):
            member = int(member)
            exploded = bool(m.exploded[r])
            if not (m.full or exploded) or member in self._done:
                continue
            names = METRIC_NAMES if m.full else EVERY_STEP_NAMES
            self._history(member).append(m.step, m.full, exploded, {k: getattr(m, k)[r] for k in names})
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
                alarm = Alarm(member, m.step, score, self.predictor.signals(view))
                self.alarmed[member] = alarm
                alarms.append(alarm)
        return alarms


def _hyper_dict(h) -> dict[str, float]:
    if isinstance(h, Mapping):
        return {k: float(v) for k, v in h.items() if k in ("lr", "plasticity", "ratio", "gamma", "clip")}
    return {k: float(getattr(h, k)) for k in ("lr", "plasticity", "ratio", "gamma", "clip")}


def is_shadow(member_seed_key: str, fraction: float) -> bool:
    """Whether an alarmed member runs on anyway (shadow) instead of being stopped.

    Deterministic: the first 8 bytes of SHA-256(key) as a number in [0, 1), compared with `fraction`,
    so a study that is resumed or rerun shadows the same members (key e.g. "study/config_index/seed").
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"shadow fraction {fraction!r}; expected a number in [0, 1]")
    u = int.from_bytes(hashlib.sha256(member_seed_key.encode("utf-8")).digest()[:8], "big") / 2.0**64
    return u < fraction
