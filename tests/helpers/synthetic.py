"""A synthetic study written straight into a database, for the dashboard's scale benchmark and tests.

Training 10,000 members takes hours; the dashboard needs only rows shaped like real ones. Members lie
on a grid of their model's axes with several seeds each; whether one explodes is drawn from a
logistic model of two of them, so the frontier has a real boundary:

- the ephemeral model (`make_study`): (lr, plasticity, ratio, gamma, clip); P(exploded) rises with
  log10 lr + 0.7 log10 plasticity (`explosion_probability`);
- a fast-weight family (`make_study(..., kind="fastweights" | "fwp")`): (lr, eta, lambda, clip) or
  (lr, beta_scale, lambda, clip), plasticity, ratio and gamma NULL as in real family rows; P(exploded)
  rises with log10 lr + log10 eta (or beta_scale), a planted boundary log10 y = -log10 lr - 2
  (`family_explosion_probability`); fastweights' grid includes eta = 0 (no fast weights: never
  explodes), both include lambda = 1.

Exploded members' last metrics hold NaN and +inf (as real ones do), some members carry early-warning
alarms, and clip is +inf (no clipping) for half the grid. Rows go in by bulk INSERT.
"""

from __future__ import annotations

import math

import numpy as np
import sqlalchemy as sa

from sweeper.db import EarlyWarning, Member, MemberMetric, Outcome, Study, StudyStatus, Trial, TrialStatus, WarningAction

PACK = 100
"""Members per synthetic trial."""
FAMILY_SLOPE, FAMILY_INTERCEPT = -1.0, -2.0
"""The planted family boundary: log10 y = FAMILY_SLOPE * log10 lr + FAMILY_INTERCEPT (y = eta or beta_scale)."""


def explosion_probability(lr, plasticity):
    """The synthetic ground truth: P(exploded) rises with log10 lr + 0.7 log10 plasticity."""
    z = 4.0 * (np.log10(lr) + 2.0) + 2.8 * (np.log10(plasticity) - 3.0)
    return 1.0 / (1.0 + np.exp(-z))


def family_explosion_probability(lr, y):
    """The families' ground truth: P(exploded) = sigmoid(4 (log10 y - FAMILY_SLOPE log10 lr - FAMILY_INTERCEPT));
    0 where y = 0 (no fast weights)."""
    with np.errstate(divide="ignore"):
        z = 4.0 * (np.log10(np.asarray(y, dtype=np.float64)) - FAMILY_SLOPE * np.log10(lr) - FAMILY_INTERCEPT)
    return 1.0 / (1.0 + np.exp(-z))


def _grid(kind: str) -> tuple[tuple[str, ...], list[tuple]]:
    """(the columns a grid point sets, the grid) of a model."""
    lrs = np.logspace(-3.5, -1.0, 20)
    if kind == "ephemeral":
        plasticities = np.logspace(2.0, 4.0, 16)
        extra = [(r, g, c) for r in (0.1, 0.3) for g in (0.5, 0.9) for c in (1.0, math.inf)]
        return ("lr", "plasticity", "ratio", "gamma", "clip"), [(lr, pl, *e) for lr in lrs for pl in plasticities for e in extra]
    y = "eta" if kind == "fastweights" else "beta_scale"
    ys = np.logspace(-1.0, 1.0, 15)
    ys = np.concatenate([[0.0], ys]) if kind == "fastweights" else np.concatenate([ys, [20.0]])
    extra = [(lam, c) for lam in (0.9, 1.0) for c in (1.0, math.inf)]
    return ("lr", y, "lam", "clip"), [(lr, v, *e) for lr in lrs for v in ys for e in extra]


def make_study(db, name: str = "synthetic", members: int = 10_000, steps: int = 10, seed: int = 0,
               status: StudyStatus = StudyStatus.COMPLETE, kind: str = "ephemeral",
               plane: list[str] | None = None) -> int:  # fmt: skip
    """Insert a study of `members` members of model `kind` with `steps` metric rows each into `db`; return
    its id. `plane`: stored as the study spec's `[search] plane` (default: none, the model's own)."""
    rng = np.random.default_rng(seed)
    columns, grid = _grid(kind)
    order = rng.permutation(len(grid))  # a small study still spans the whole grid
    config_index = [int(order[i % len(grid)]) for i in range(members)]
    configs = [grid[c] for c in config_index]
    seeds = [i // len(grid) for i in range(members)]
    batches = 1000
    spec = {"name": name, "objectives": [{"metric": "eval_mem_acc", "direction": "maximize"}], "synthetic": True,
            "model": {} if kind == "ephemeral" else {"kind": kind}, "search": {"kind": "grid"}}
    if plane is not None:
        spec["search"]["plane"] = list(plane)
    family = kind != "ephemeral"

    with db.session() as s:
        study = Study(name=name, spec=spec, status=status, planned_trials=math.ceil(members / PACK))
        s.add(study)
        s.flush()
        trial_ids = []
        for number in range(math.ceil(members / PACK)):
            trial = Trial(study_id=study.id, number=number, status=TrialStatus.COMPLETE, attempts=1)
            s.add(trial)
            s.flush()
            trial_ids.append(trial.id)
        lr, y = np.array([c[0] for c in configs]), np.array([c[1] for c in configs])
        p_explode = family_explosion_probability(lr, y) if family else explosion_probability(lr, y)
        exploded = rng.random(members) < p_explode
        explode_step = rng.integers(50, batches, members)
        rows = []
        for i, (config, sd) in enumerate(zip(configs, seeds, strict=True)):
            boom = bool(exploded[i])
            rows.append({
                "trial_id": trial_ids[i // PACK], "study_id": study.id, "pack_index": i % PACK,
                "config_index": config_index[i], **{c: float(v) for c, v in zip(columns, config, strict=True)},
                "model_kind": kind, "seed": sd, "config": {"synthetic": True},
                "outcome": Outcome.EXPLODED if boom else Outcome.STABLE,
                "explode_step": int(explode_step[i]) if boom else None,
                "steps_done": int(explode_step[i]) + 1 if boom else batches,
                "final_loss": math.inf if boom else float(rng.uniform(0.2, 1.2)),
                "mem_acc": math.nan if boom else float(rng.uniform(0.1, 1.0)), "baseline": 1 / 9,
                "eval_mem_acc": math.nan if boom else float(rng.uniform(0.1, 1.0)),
            })  # fmt: skip
        if rows:
            s.execute(sa.insert(Member), rows)
        ids = s.scalars(sa.select(Member.id).where(Member.study_id == study.id).order_by(Member.id)).all()

        metric_rows, warning_rows = [], []
        for i, member_id in enumerate(ids):
            last = rows[i]["steps_done"] - 1
            for k, step in enumerate(np.linspace(0, last, steps).round().astype(int)):
                frac = (k + 1) / steps
                ratio = 0.05 * math.exp(4 * frac) if exploded[i] else 0.05 * (1 + 0.1 * math.sin(5 * frac))
                final = exploded[i] and k == steps - 1
                row = {
                    "member_id": member_id, "step": int(step), "loss": math.inf if final else 2.2 - frac,
                    "acc": 0.3 + 0.5 * frac, "mem_acc": math.nan if final else 0.1 + 0.8 * frac, "baseline": 1 / 9,
                    "w_slow": 1.0, "max_logit": math.inf if final else 5 * frac,
                }  # fmt: skip
                if family:
                    row.update(fast_norm=frac, grad_fast=ratio * 10, grad_rest=10.0,
                               grad_fast_ratio=math.nan if final else ratio, grad_fast_rms_ratio=ratio)
                else:
                    row.update(grad_eph=ratio * 10, grad_slow=10.0, grad_ratio=math.nan if final else ratio,
                               grad_rms_ratio=ratio, w_eph=frac)
                metric_rows.append(row)
            if exploded[i] and i % 3 == 0:
                warning_rows.append({
                    "member_id": member_id, "step": int(max(0, last - 40)), "score": 0.93, "predictor": "synthetic",
                    "signals": {"grad_ratio": math.nan}, "action": WarningAction.SHADOW,
                })  # fmt: skip
        for start in range(0, len(metric_rows), 50_000):
            s.execute(sa.insert(MemberMetric), metric_rows[start : start + 50_000])
        if warning_rows:
            s.execute(sa.insert(EarlyWarning), warning_rows)
        return study.id
