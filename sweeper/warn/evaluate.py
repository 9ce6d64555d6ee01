"""`sweeper warn eval`: how well a predictor would have stopped a finished study's explosions.

The stored histories are replayed batch by batch through `OnlineWarner` (the worker's own code), on
the members that ran to the end of their budget without being stopped (stable or exploded) and that
the predictor was not fitted on. Definitions (the same for the predictor and every baseline):

- A member is *alarmed* at the first full-metric batch from `min_step` on whose score reaches the
  threshold, up to its explosion batch: an exploded member's replay ends there, as when the engine
  stops it, so an alarm is never later than the explosion criterion.
- AUROC: exploded vs stable, ranked by each member's highest score over the batches it was scored on
  (up to its explosion, or the end of its budget); a member never scored (it exploded before
  `min_step`) ranks lowest. `auroc_at_step`: by the score on the first scored batch >= at_step,
  over the members not exploded before it.
- Every exploded member has a detection `d` (explode_step: when the engine's criterion decided) and an
  onset `o` (explode_onset: the first batch of the excursion it confirmed, docs/engine.md); o <= d. A
  run broken from its first batch has o = 0 and d = the grace.
- precision = exploded alarmed / alarmed; recall = exploded alarmed / exploded (an alarm at any batch
  up to d); recall_by_onset = exploded alarmed at a <= o / exploded. lead time = o - a, from the
  onset: an alarm after the onset is a late alarm and its lead is negative (`late_alarms` counts
  them). `median_lead_to_detection` is the median of d - a, for comparison only.
- Compute. An exploding member's useful compute ends at its onset: left alone it trains its whole
  budget (train.batches), and the batches o .. budget-1 are wasted. Stopped after batch a it trains
  a + 1 batches and wastes max(0, a + 1 - o), so the stop saves budget - max(o, a + 1) wasted batches.
  `compute_saved` = sum of those over the alarmed exploded members / sum of budget - o over all
  exploded members: the fraction of the compute wasted after the onsets that the stops save.
  `compute_saved_of_budget` = sum(budget - (a + 1)) / (exploded x budget): the fraction of the
  exploding members' budgets. Engines that stop at the detection already save budget - (d + 1); what
  the alarm saves on top is `compute_saved_beyond_explosion_stop` = sum(d - a) / sum(d + 1).
  `stable_compute_lost`: batches false stops take from stable members / (stable x budget).
  This needs no full-length traces (`stop_on_explosion = false`); those only make explosions that
  happen later than an engine stop would have let them visible.
- Late explosions: the exploded members with onset >= `late_onset` (default 100), against all the
  stable members, get the same figures in a block of their own (`late_explosions`): explosions
  present from the first batches are easy to call and say little about a predictor's lead.

Baselines: `explosion_criterion` (stop when the engine flags the explosion: lead time 0, by definition
no false stops), `loss_zscore` (predictors.LossZScore), and `median_rule` (Ray Tune's median stopping
rule: alarm a member whose running mean loss is worse than the median of the other members' running
means at the same batch, from min_step on, once 3 others are running).

Every model family is evaluated the same way, its signals read by role (`signals.py`). A predictor
that cannot score the study's model is refused (`Predictor.refusal`: transition_bound outside the
delta rules, a learned predictor reading features the model lacks or hyperparameters that mean
another quantity there). For a learned predictor whose payload holds `carry` (`carry.py`; `warn
fit` stores it), the report has a `carry` block: how many of the evaluated members lie outside the
fitted members' feature range at its first scored batch, and whether its fitted study's strongest
precursors point the same way here. The report's `transfer` block says which models the predictor
was fitted on, which it is evaluated on, and, across models, which of its features are levels in the
fitted model's own units (`features.SCALE_FREE_FEATURES` are the ones that carry over).
`transfer.py` (`sweeper warn transfer`) fits on one study and evaluates on others with these same
figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sweeper.errors import SweeperError
from sweeper.outcomes import Outcome

from .features import SCALE_FREE_FEATURES, feature_set_name
from .online import OnlineWarner, Settings
from .predictors import SCORE_CAP, LossZScore, Predictor, PredictorError
from .signals import ModelSignals
from .traces import Trace, load_traces, replay_batches, study_model

TARGETS = {"auroc": 0.9, "false_stop_rate": 0.05, "compute_saved": 0.5}
LATE_ONSET = 100
"""Default first onset batch of a late explosion."""
MEDIAN_MIN_OTHERS = 3


class EvalError(SweeperError, ValueError):
    """The study cannot be evaluated as asked (no held-out members, no explosions, ...)."""

    field_default = "study"


@dataclass
class Outcomes:
    """One detector's decisions on the evaluated members (aligned with the traces)."""

    alarm: list[int | None]
    max_score: list[float]
    first_scores: list[tuple[int, float] | None]
    threshold: float


def _run_warner(traces: list[Trace], predictor: Predictor, min_step: int, threshold: float | None,
                at_step: int, model: ModelSignals | None = None) -> Outcomes:
    hypers = [t.hyper for t in traces]
    warner = OnlineWarner(Settings(min_step, threshold), predictor, hypers=hypers, model=model,
                          chance_loss=[t.chance_loss for t in traces])
    for m in replay_batches(traces):
        warner.observe(m)
    alarm = [warner.alarmed[k].step if k in warner.alarmed else None for k in range(len(traces))]
    max_score = [warner.max_score.get(k, -math.inf) for k in range(len(traces))]
    first = [next(((s, v) for s, v in warner.scores.get(k, []) if s >= at_step), None) for k in range(len(traces))]
    return Outcomes(alarm, max_score, first, warner.threshold)


def _explosion_criterion(traces: list[Trace]) -> Outcomes:
    alarm = [t.explode_step if t.exploded else None for t in traces]
    return Outcomes(alarm, [1.0 if t.exploded else 0.0 for t in traces], [None] * len(traces), 0.5)


def _median_rule(traces: list[Trace], min_step: int, at_step: int) -> Outcomes:
    """Running mean loss vs the median of the other running members' at the same batch."""
    n = len(traces)
    sums, counts = np.zeros(n), np.zeros(n)
    alarm: list[int | None] = [None] * n
    max_score = [-math.inf] * n
    first: list[tuple[int, float] | None] = [None] * n
    for m in replay_batches(traces):
        if not m.full:
            continue
        k = m.member
        loss = np.where(np.isfinite(m["loss"]), m["loss"], np.inf)
        sums[k] += loss
        counts[k] += 1
        if m.step < min_step or len(k) < MEDIAN_MIN_OTHERS + 1:
            continue
        running = sums[k] / counts[k]
        for r, member in enumerate(k):
            if alarm[member] is not None:
                continue
            median = float(np.median(np.delete(running, r)))
            score = _log_ratio(float(running[r]), median)
            max_score[member] = max(max_score[member], score)
            if first[member] is None and m.step >= at_step:
                first[member] = (m.step, score)
            if score > 0:
                alarm[member] = m.step
    return Outcomes(alarm, max_score, first, 0.0)


def _log_ratio(a: float, b: float) -> float:
    """log10(a / b) for positive losses, capped at +-SCORE_CAP (an infinite loss is the worst)."""
    if not math.isfinite(a):
        return SCORE_CAP if math.isfinite(b) else 0.0
    if not math.isfinite(b):
        return -SCORE_CAP
    if a <= 0 or b <= 0:
        return 0.0
    return float(np.clip(math.log10(a / b), -SCORE_CAP, SCORE_CAP))


def auroc(y: np.ndarray, score: np.ndarray) -> float | None:
    if y.all() or not y.any():
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score))


def _median(x: list[float]) -> float | None:
    return float(np.median(x)) if x else None


def subset(out: Outcomes, keep: list[int]) -> Outcomes:
    """The outcomes of the members `keep` (indices), in that order."""
    return Outcomes([out.alarm[k] for k in keep], [out.max_score[k] for k in keep],
                    [out.first_scores[k] for k in keep], out.threshold)


def summarize(traces: list[Trace], out: Outcomes) -> dict[str, Any]:
    """The figures of the module docstring for one detector."""
    y = np.array([t.exploded for t in traces])
    finite = [s for s in out.max_score if math.isfinite(s)]
    floor = (min(finite) - 1.0) if finite else 0.0
    score = np.array([s if math.isfinite(s) else floor for s in out.max_score])
    at = [(t.exploded, f[1]) for t, f in zip(traces, out.first_scores) if f is not None]
    auroc_at = auroc(np.array([a for a, _ in at], dtype=bool), np.array([b for _, b in at])) if at else None

    tp = [(t, a) for t, a in zip(traces, out.alarm) if t.exploded and a is not None]
    fp = [(t, a) for t, a in zip(traces, out.alarm) if not t.exploded and a is not None]
    exploded = [t for t in traces if t.exploded]
    stable = [t for t in traces if not t.exploded]
    leads = [t.explode_onset - a for t, a in tp]
    saved = sum(t.budget - max(t.explode_onset, a + 1) for t, a in tp)
    wasted = sum(t.budget - t.explode_onset for t in exploded)
    saved_of_budget = sum(t.budget - (a + 1) for t, a in tp)
    spent_to_explosion = sum(t.explode_step + 1 for t in exploded)
    lost = sum(t.budget - (a + 1) for t, a in fp)
    alarmed = len(tp) + len(fp)
    return {
        "threshold": out.threshold,
        "auroc": auroc(y, score),
        "auroc_at_step": auroc_at,
        "auroc_at_step_members": len(at),
        "alarmed": alarmed,
        "true_alarms": len(tp),
        "false_alarms": len(fp),
        "late_alarms": sum(lead < 0 for lead in leads),
        "precision": len(tp) / alarmed if alarmed else None,
        "recall": len(tp) / len(exploded) if exploded else None,
        "recall_by_onset": sum(lead >= 0 for lead in leads) / len(exploded) if exploded else None,
        "false_stop_rate": len(fp) / len(stable) if stable else None,
        "median_lead_time": _median(leads),
        "lead_time_quartiles": [float(q) for q in np.percentile(leads, [25, 75])] if leads else None,
        "median_lead_to_detection": _median([t.explode_step - a for t, a in tp]),
        "compute_saved": saved / wasted if wasted else None,
        "compute_saved_of_budget": saved_of_budget / (len(exploded) * exploded[0].budget) if exploded else None,
        "compute_saved_beyond_explosion_stop": (sum(t.explode_step - a for t, a in tp) / spent_to_explosion
                                                if spent_to_explosion else None),
        "stable_compute_lost": lost / sum(t.budget for t in stable) if stable else None,
        "median_alarm_step": _median([a for _, a in tp]),
    }


def _meets(r: dict[str, Any]) -> dict[str, bool]:
    return {
        "auroc": r["auroc"] is not None and r["auroc"] >= TARGETS["auroc"],
        "false_stop_rate": r["false_stop_rate"] is not None and r["false_stop_rate"] <= TARGETS["false_stop_rate"],
        "compute_saved": r["compute_saved"] is not None and r["compute_saved"] >= TARGETS["compute_saved"],
    }


def transfer(predictor: Predictor, model: ModelSignals) -> dict[str, Any]:
    """Which models `predictor` was fitted on and which it is evaluated on; across models, the features
    it reads as levels in the fitted model's units (not in SCALE_FREE_FEATURES)."""
    payload = getattr(predictor, "payload", None) or {}
    fitted = payload.get("models") or payload.get("model_kinds")
    features = list(getattr(predictor, "features", ()))
    kinds = set(payload.get("model_kinds") or [])
    cross = bool(kinds) and kinds != {model.kind}
    feature_set = payload.get("feature_set") or (feature_set_name(features) if features else None)
    return {
        "fitted_on": list(fitted) if fitted else None,
        "fitted_kinds": sorted(kinds) if kinds else None,
        "evaluated_on": model.describe(),
        "evaluated_kind": model.kind,
        "cross_model": cross,
        "feature_set": feature_set,
        "level_features": [f for f in features if f not in SCALE_FREE_FEATURES] if cross else [],
    }


def evaluate(db, study: str, predictor: Predictor, *, min_step: int | None = None, at_step: int | None = None,
             threshold: float | None = None, late_onset: int = LATE_ONSET) -> dict[str, Any]:
    """The evaluation report (strict-JSON-able) of `predictor` and the baselines on `study`."""
    model = study_model(db, study)
    reason = predictor.refusal(model)
    if reason is not None:
        raise PredictorError(reason)
    traces = load_traces(db, study)
    trained = set((getattr(predictor, "payload", None) or {}).get("train_member_ids") or [])
    held = [t for t in traces if t.member_id not in trained]
    n_trained = len(traces) - len(held)
    if not held:
        why = (f"all {len(traces)} finished members of {study!r} were used to fit predictor {predictor.name!r}"
               if traces else f"study {study!r} has no finished (stable or exploded) members")
        raise EvalError(f"no held-out members to evaluate: {why}; evaluate on another study")
    check_both_outcomes(held, study)
    if min_step is None:
        min_step = _study_min_step(db, study)
        if getattr(predictor, "payload", None) and "min_step" in predictor.payload:
            min_step = int(predictor.payload["min_step"])
    at_step = min_step if at_step is None else at_step
    outcomes = {"predictor": _run_warner(held, predictor, min_step, threshold, at_step, model),
                **baseline_outcomes(held, min_step, at_step, model)}
    report = {
        "study": study,
        "predictor": predictor.describe(),
        "transfer": transfer(predictor, model),
        "min_step": min_step,
        "at_step": at_step,
        "budget": held[0].budget,
        "explode_grace": held[0].grace,
        "late_onset": late_onset,
        "members": members_block(held, min_step, late_onset),
        "targets": dict(TARGETS),
    }
    report["members"]["excluded_trained_on"] = n_trained
    carry = (getattr(predictor, "payload", None) or {}).get("carry")
    if carry is not None:
        from .carry import carry_report

        report["carry"] = carry_report(carry, held)
    return {**report, **figures(held, outcomes, late_onset)}


def check_both_outcomes(held: list[Trace], study: str) -> None:
    """EvalError unless the members hold both outcomes (AUROC, recall and false stops need both)."""
    n_exp = sum(t.exploded for t in held)
    if n_exp == 0 or n_exp == len(held):
        missing = (Outcome.EXPLODED if n_exp == 0 else Outcome.STABLE).value
        raise EvalError(f"no {missing} members among the {len(held)} held-out finished members of {study!r}: "
                        "AUROC, recall and false stops need both; evaluate on a study spanning the boundary")


def members_block(held: list[Trace], min_step: int, late_onset: int) -> dict[str, int]:
    """What the evaluated members are: counts by outcome and by when their explosions began."""
    n_exp = sum(t.exploded for t in held)
    return {
        "evaluated": len(held), Outcome.EXPLODED.value: n_exp, Outcome.STABLE.value: len(held) - n_exp,
        "exploded_after_grace": sum(t.exploded and t.explode_step > t.grace for t in held),
        "exploded_before_min_step": sum(t.exploded and t.explode_step < min_step for t in held),
        "onset_at_batch_0": sum(t.exploded and t.explode_onset == 0 for t in held),
        "onset_before_min_step": sum(t.exploded and t.explode_onset < min_step for t in held),
        "late_explosions": sum(t.exploded and t.explode_onset >= late_onset for t in held),
        "onset_estimated": sum(t.onset_estimated for t in held),
    }


def figures(held: list[Trace], outcomes: dict[str, Outcomes], late_onset: int) -> dict[str, Any]:
    """`results` (every explosion) and `late_explosions` (onset >= late_onset, against every stable member)
    of the detectors' outcomes; the one named "predictor" is compared with the others."""
    late = [k for k, t in enumerate(held) if not t.exploded or t.explode_onset >= late_onset]
    n_late = sum(held[k].exploded for k in late)
    late_traces = [held[k] for k in late]
    n_exp = sum(t.exploded for t in held)
    return {
        "results": _results({k: summarize(held, o) for k, o in outcomes.items()}),
        "late_explosions": {
            "late_onset": late_onset, Outcome.EXPLODED.value: n_late, Outcome.STABLE.value: len(held) - n_exp,
            "results": _results({k: summarize(late_traces, subset(o, late)) for k, o in outcomes.items()})
            if n_late else None,
        },
    }


def scores_of(traces: list[Trace], predictor: Predictor, min_step: int,
              model: ModelSignals | None = None) -> list[list[tuple[int, float]]]:
    """Every member's (batch, score) on every batch OnlineWarner scores it (from min_step to its
    explosion), with no alarm cutting it short: `outcomes_from_scores` then gives any threshold's alarms."""
    warner = OnlineWarner(Settings(min_step, math.inf), predictor, hypers=[t.hyper for t in traces], model=model,
                          chance_loss=[t.chance_loss for t in traces])
    for m in replay_batches(traces):
        warner.observe(m)
    return [warner.scores.get(k, []) for k in range(len(traces))]


def outcomes_from_scores(scores: list[list[tuple[int, float]]], threshold: float, at_step: int) -> Outcomes:
    """What OnlineWarner at `threshold` decides from these scores: the alarm at the first score that
    reaches it, and the scores up to that alarm (the warner scores an alarmed member no more)."""
    alarm: list[int | None] = []
    max_score: list[float] = []
    first: list[tuple[int, float] | None] = []
    for sc in scores:
        k = next((i for i, (_, v) in enumerate(sc) if v >= threshold), None)
        kept = sc if k is None else sc[: k + 1]
        alarm.append(None if k is None else sc[k][0])
        max_score.append(max((v for _, v in kept), default=-math.inf))
        first.append(next(((s, v) for s, v in kept if s >= at_step), None))
    return Outcomes(alarm, max_score, first, threshold)


def baseline_outcomes(held: list[Trace], min_step: int, at_step: int,
                      model: ModelSignals | None = None) -> dict[str, Outcomes]:
    """The baselines' decisions: the explosion criterion, the loss z-score and the median rule."""
    return {
        "explosion_criterion": _explosion_criterion(held),
        "loss_zscore": _run_warner(held, LossZScore(), min_step, None, at_step, model),
        "median_rule": _median_rule(held, min_step, at_step),
    }


def _results(figures: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """{"predictor": ..., "baselines": {...}}, each with meets_targets; the predictor's `beats`."""
    p = figures.pop("predictor")
    for r in (p, *figures.values()):
        r["meets_targets"] = _meets(r)
    p["beats"] = {name: _beats(p, b) for name, b in figures.items()}
    return {"predictor": p, "baselines": figures}


def _beats(p: dict[str, Any], b: dict[str, Any]) -> dict[str, bool | None]:
    """Per figure, whether the predictor does better than the baseline (None where one is undefined)."""
    def cmp(key, higher=True):
        if p[key] is None or b[key] is None:
            return None
        return p[key] > b[key] if higher else p[key] < b[key]

    return {"auroc": cmp("auroc"), "recall": cmp("recall"), "precision": cmp("precision"),
            "false_stop_rate": cmp("false_stop_rate", higher=False), "median_lead_time": cmp("median_lead_time"),
            "compute_saved": cmp("compute_saved")}


def _study_min_step(db, study: str) -> int:
    import sqlalchemy as sa

    from sweeper.db import Study

    with db.read_session() as s:
        spec = s.scalars(sa.select(Study.spec).where(Study.name == study)).first() or {}
    return int((spec.get("early_warning") or {}).get("min_step", 20))
