"""Finished studies of the fast-weight families written straight into a database, for the early-warning tests.

Members are shaped like what a family pack stores (`sweeper.sweep.pack`): full-metric rows every
`every` batches with every family metric (fast_norm, grad_fast, grad_rest, grad_fast_ratio,
grad_fast_rms_ratio, transition_max; the ephemeral columns NULL), and an exploded member's detection
batch with every metric too, whether or not it is a full-metric batch. The signals are built so that
what a predictor should see is known from the member's description: the fast/rest gradient ratio
jumps tenfold at `jump`, the loss sits above the explosion threshold from `onset`, transition_max (fwp
delta rules only; NaN elsewhere, as the engine records it) steps from `below` to `above` at `cross`.
`level` multiplies every gradient norm: the same history in another model's units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sweeper.db import Member, MemberMetric, Outcome, StudyStatus
from tests.helpers.db import add_study_with_trial

MODELS = {
    "fastweights": {"kind": "fastweights", "hidden": 16},
    "fwp": {"kind": "fwp", "rule": "delta", "phi": "identity"},
    "fwp_hebb": {"kind": "fwp", "rule": "hebb", "phi": "elu1"},
}
"""The `[model]` tables of the synthetic studies (stored in the study's spec)."""
EVERY, BUDGET, GRACE, MIN_STEP = 5, 100, 50, 10


@dataclass
class FamilySynth:
    outcome: str
    explode_step: int | None = None
    onset: int | None = None
    """From this batch the loss is 5 (above the threshold 2). Stored as explode_onset."""
    jump: int | None = None
    """grad_fast_ratio is ten times larger from this batch on (None: never)."""
    cross: int | None = None
    """transition_max is `above` from this batch on, `below` before it (None: never)."""
    below: float = 1.2
    above: float = 3.0
    lr: float = 1e-2
    rate: float = 0.5
    """eta (fastweights) or beta_scale (fwp)."""
    noise: float = 0.0
    """Decades of log-normal noise on the gradient ratio."""
    level: float = 1.0
    seed: int = 0

    def rows(self, transition: bool) -> list[tuple[int, dict]]:
        rng = np.random.default_rng(self.seed)
        steps = list(range(0, BUDGET, EVERY))
        if self.explode_step is not None and self.explode_step not in steps:
            steps = sorted([*steps, self.explode_step])
        out = []
        for step in steps:
            if self.explode_step is not None and step > self.explode_step:
                break
            up = self.jump is not None and step >= self.jump
            ratio = 0.2 * (10.0 if up else 1.0) * 10 ** (self.noise * rng.normal())
            loss = 2.4 - 0.005 * step + 0.02 * rng.normal()
            if self.onset is not None and step >= self.onset:
                loss = 5.0
            if step == self.explode_step:
                loss = 9.0
            grad_rest = 3.0 * self.level
            x = (self.above if self.cross is not None and step >= self.cross else self.below) if transition else math.nan
            out.append((step, {
                "loss": loss, "acc": 0.3, "mem_acc": 0.3, "max_logit": 3.0 * (1 + up) + 0.1 * rng.normal(),
                "w_slow": 5.0, "fast_norm": 0.5 * (1 + up), "grad_fast": ratio * grad_rest, "grad_rest": grad_rest,
                "grad_fast_ratio": ratio, "grad_fast_rms_ratio": 2 * ratio, "transition_max": x,
            }))  # fmt: skip
        return out


def insert_family_study(db, name: str, model: str, members: list[FamilySynth], *, min_step: int = MIN_STEP) -> list[int]:
    """A finished study of `MODELS[model]` with these members (one trial); returns the member ids in order."""
    table = MODELS[model]
    kind = table["kind"]
    transition = kind == "fwp" and table.get("rule") in ("delta", "gated_delta")
    with db.session() as s:
        study, trial = add_study_with_trial(s, name=name, status=StudyStatus.COMPLETE,
                      spec={"model": dict(table), "train": {"batches": BUDGET, "metrics_every": EVERY,
                                                            "explode_grace": GRACE, "updater": "bptt"},
                            "early_warning": {"min_step": min_step}})
        ids = []
        for i, m in enumerate(members):
            row = Member(trial_id=trial.id, study_id=study.id, pack_index=i, model_kind=kind, lr=m.lr,
                         eta=m.rate if kind == "fastweights" else None, beta_scale=m.rate if kind == "fwp" else None,
                         lam=0.95 if kind == "fastweights" else 1.0, clip=math.inf, seed=m.seed, config={},
                         outcome=Outcome(m.outcome), explode_step=m.explode_step, explode_onset=m.onset,
                         steps_done=(m.explode_step + 1) if m.explode_step is not None else BUDGET)
            s.add(row)
            s.flush()
            s.add_all(MemberMetric.from_metrics(row.id, step, values) for step, values in m.rows(transition))
            ids.append(row.id)
    return ids


def family_members(n: int, seed0: int, *, level: float = 1.0, cross: bool = False) -> list[FamilySynth]:
    """n exploding members (ratio jump, loss above the threshold before the detection) and n stable ones,
    with noise; `cross`: the exploding members' transition_max crosses 2 at their jump."""
    exploding = []
    for i in range(n):
        jump = 25 + 5 * (i % 3)
        detect = 60 + 5 * (i % 4) + (i % 2) * 2  # every other detection between two full-metric batches
        exploding.append(FamilySynth("exploded", detect, onset=detect - 3, jump=jump, cross=jump if cross else None,
                                     noise=0.05, level=level, seed=seed0 + i, lr=3e-2, rate=2.0))
    stable = [FamilySynth("stable", noise=0.05, level=level, seed=seed0 + 100 + i, rate=0.5) for i in range(n)]
    return exploding + stable
