"""Features of a member's history up to a batch: what the predictors read.

Every feature is a finite float whatever the metrics hold (but for the loss-vs-chance ones on a
history without its task's chance loss: NaN, and a predictor reading them refuses such a model
before it scores, `LearnedPredictor.refusal`). Norms, logits, losses and the gradient
ratio are read in decades (log10); a metric that went NaN or infinite is read as LOG_CAP decades
(as large as anything gets), 0 as -LOG_CAP, so a blown-up run gives extreme but finite features
and `nonfinite` says that it happened. "now" is the median of the last NOW_ROWS full rows (one
noisy batch does not decide); slopes are least-squares over the last SLOPE_ROWS full rows, in
decades per 100 batches; "growth" is now minus the first full row.

Features read roles (`signals.py`), so they are computed the same way for every model family: on a
fast-weight family "grad_eph" is grad_fast, "w_eph" is fast_norm, and so on. Feature sets (`FEATURE_SETS`,
`sweeper warn fit --features`):

- `trajectory` (TRAJECTORY_FEATURES): levels and changes of every role. Levels
  ("first", "now") are in each model's own units (a per-character RMS for the ephemeral model's
  gradients, a whole-gradient norm for the families'; a loss that starts at ln V), so a predictor
  that reads them is meant for the model it was fitted on.
- `portable` (PORTABLE_FEATURES, the default: DEFAULT_FEATURES): scale-free features, for a predictor
  fitted on one task, width, updater, `metrics_every` or model family and used on another (on the
  studies of `sweeper warn transfer` it carries over better than `trajectory` and does as well on
  its own study: docs/findings.md). Each reads a signal against a
  reference that moves with it, so the feature does not:
  - against the member's own first batches (the rows of batches <= START_BATCHES after its first):
    the rise of every norm, of the gradient-norm ratio and of the largest logit, in decades. A
    constant factor on a signal (another unit, a sum instead of a mean, another entry count)
    cancels;
  - against the task's chance loss ln V (`signals.chance_loss`): the loss now and at its best so far,
    in decades of loss / ln V, and how far it is above its best;
  - against the model's size: the one level read, the ephemeral / slow gradient ratio, is the
    per-entry one (`grad_rms_ratio`: each norm divided by the square root of its entry count), so the
    raw ratio's dependence on how many entries each side has (on the width) drops out;
  - in batches, not rows: "now" is the median of the rows of the last NOW_BATCHES batches and
    trends are least-squares slopes over the last TREND_BATCHES batches, so a study that records
    every 10th batch reads the same numbers as one that records every 5th.
  `tests/warn/test_transfer.py` checks these invariances directly.
- `growth` (GROWTH_FEATURES): the changes of the `trajectory` set alone (growths and slopes of the
  logs over rows, the loss above its minimum), without its levels: scale-free in the signals'
  units, but not in `metrics_every` (their windows are rows) nor in the loss's scale.
- `transition` (TRANSITION_FEATURES): the delta rule's transition_max (fwp with rule delta or
  gated_delta only; refused elsewhere).
- `hypers` (HYPER_FEATURES, `--hypers`): log lr, log plasticity and their product, by role:
  plasticity is the ephemeral model's plasticity, fastweights' eta, fwp's beta_scale. The same feature
  names thus mean another quantity in each model, so a predictor that reads them scores only a model
  whose plasticity is the same field (`LearnedPredictor.refusal`), and a fit mixing such models is
  refused. A plasticity of 0 (fastweights' eta = 0) reads as -LOG_CAP decades.
"""

from __future__ import annotations

import math

import numpy as np

from .history import HistoryView

LOG_CAP = 12.0
NOW_ROWS = 3
SLOPE_ROWS = 10

TRAJECTORY_FEATURES = (
    "log_ratio_first", "log_ratio_now", "log_ratio_growth", "log_ratio_slope",
    "log_grad_slow_now", "log_grad_slow_growth", "log_grad_eph_growth",
    "log_w_slow_growth", "log_w_eph_growth",
    "log_max_logit_now", "log_max_logit_growth", "log_max_logit_slope",
    "log_loss_first", "log_loss_now", "log_loss_above_min", "log_loss_slope",
    "nonfinite", "log_step",
)  # fmt: skip
HYPER_FEATURES = ("log_lr", "log_plasticity", "log_lr_x_plasticity")
GROWTH_FEATURES = (
    "log_ratio_growth", "log_ratio_slope", "log_grad_slow_growth", "log_grad_eph_growth",
    "log_w_slow_growth", "log_w_eph_growth", "log_max_logit_growth", "log_max_logit_slope",
    "log_loss_above_min", "log_loss_slope", "nonfinite", "log_step",
)  # fmt: skip
PORTABLE_FEATURES = (
    "rms_ratio_start", "rms_ratio_now", "ratio_rise", "ratio_trend",
    "grad_slow_rise", "grad_eph_rise", "w_slow_rise", "w_eph_rise", "max_logit_rise", "max_logit_trend",
    "loss_vs_chance_now", "loss_vs_chance_best", "loss_above_best", "loss_trend",
    "nonfinite", "log_step",
)  # fmt: skip
CHANCE_FEATURES = ("loss_vs_chance_now", "loss_vs_chance_best")
"""The features that need the task's chance loss (`HistoryView.chance_loss`)."""
SCALE_FREE_FEATURES = tuple(dict.fromkeys(GROWTH_FEATURES + PORTABLE_FEATURES))
"""Every feature that does not move when a signal is multiplied by a constant."""
TRANSITION_FEATURES = ("log_transition_now", "log_transition_peak", "log_transition_growth")
FEATURE_SETS = {"trajectory": TRAJECTORY_FEATURES, "portable": PORTABLE_FEATURES, "growth": GROWTH_FEATURES,
                "transition": TRANSITION_FEATURES, "hypers": HYPER_FEATURES}
DEFAULT_FEATURES = "portable"
"""The feature sets `sweeper warn fit` and `warn transfer` use when not told (`--features`)."""
START_BATCHES = 10
"""The member's own first batches: its full rows up to this many batches after its first one."""
NOW_BATCHES = 10
"""`portable`'s "now": the median of the full rows of the last this many batches (and the latest)."""
TREND_BATCHES = 50
"""`portable`'s trends: slopes over the full rows of the last this many batches."""


class FeatureSetError(ValueError):
    """An unknown feature set name (callers turn it into their own SweeperError)."""


def feature_names(sets: str) -> tuple[str, ...]:
    """The features of comma-separated FEATURE_SETS names, in order, each once ("portable,transition")."""
    names: list[str] = []
    parts = [p.strip() for p in sets.split(",")]
    for part in parts:
        if part not in FEATURE_SETS:
            raise FeatureSetError(f"unknown feature set {part!r}; expected a comma-separated list of "
                                  f"{', '.join(FEATURE_SETS)}")
        names.extend(n for n in FEATURE_SETS[part] if n not in names)
    return tuple(names)


def feature_set_name(names) -> str:
    """The comma-separated FEATURE_SETS that give exactly these features in this order, or "custom"."""
    import itertools

    sets = list(FEATURE_SETS)
    for k in range(1, len(sets) + 1):
        for combo in itertools.combinations(sets, k):
            if feature_names(",".join(combo)) == tuple(names):
                return ",".join(combo)
    return "custom"


def safe_log10(x: np.ndarray) -> np.ndarray:
    """log10|x| clipped to [-LOG_CAP, LOG_CAP]; NaN and +-inf read as LOG_CAP (a blow-up)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log10(np.abs(x))
    out = np.where(np.isfinite(x), out, LOG_CAP)
    return np.clip(np.nan_to_num(out, nan=LOG_CAP, neginf=-LOG_CAP, posinf=LOG_CAP), -LOG_CAP, LOG_CAP)


def log_ratio(h: HistoryView) -> np.ndarray:
    """log10(grad_eph / grad_slow) from the capped logs of the two norms: defined when either blew up."""
    return safe_log10(h["grad_eph"]) - safe_log10(h["grad_slow"])


def median(x: np.ndarray) -> float:
    """np.median of a short array of finite numbers (what safe_log10 returns), without numpy's per-call
    overhead, which dominates on the few rows a feature reads: the same value (middle element, or the
    mean of the two middle ones)."""
    s = sorted(x.tolist())
    n = len(s)
    return 0.5 * (s[(n - 1) // 2] + s[n // 2])


def _now(x: np.ndarray) -> float:
    return median(x[-NOW_ROWS:])


def _slope(steps: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope over the last SLOPE_ROWS rows, per 100 batches (0 with fewer than 2 rows)."""
    s, y = steps[-SLOPE_ROWS:].astype(np.float64), y[-SLOPE_ROWS:]
    if len(s) < 2:
        return 0.0
    s = s - s.mean()
    den = float(s @ s)
    return 100.0 * float(s @ (y - y.mean())) / den if den > 0 else 0.0


def trajectory_features(h: HistoryView) -> dict[str, float]:
    """TRAJECTORY_FEATURES of the full rows of `h` (which must hold at least one)."""
    f = h.full_rows()
    if len(f) == 0:
        raise ValueError(f"member {h.member}: no full-metric row yet; features need at least one")
    steps = f.step
    ratio = log_ratio(f)
    gs, ge = safe_log10(f["grad_slow"]), safe_log10(f["grad_eph"])
    ws, we = safe_log10(f["w_slow"]), safe_log10(f["w_eph"])
    logit, loss = safe_log10(f["max_logit"]), safe_log10(f["loss"])
    bad = any(not np.isfinite(h[k]).all() for k in ("loss", "max_logit")) or any(
        not np.isfinite(f[k]).all() for k in ("grad_eph", "grad_slow", "w_eph", "w_slow"))
    return {
        "log_ratio_first": float(ratio[0]),
        "log_ratio_now": _now(ratio),
        "log_ratio_growth": _now(ratio) - float(ratio[0]),
        "log_ratio_slope": _slope(steps, ratio),
        "log_grad_slow_now": _now(gs),
        "log_grad_slow_growth": _now(gs) - float(gs[0]),
        "log_grad_eph_growth": _now(ge) - float(ge[0]),
        "log_w_slow_growth": _now(ws) - float(ws[0]),
        "log_w_eph_growth": _now(we) - float(we[0]),
        "log_max_logit_now": _now(logit),
        "log_max_logit_growth": _now(logit) - float(logit[0]),
        "log_max_logit_slope": _slope(steps, logit),
        "log_loss_first": float(loss[0]),
        "log_loss_now": _now(loss),
        "log_loss_above_min": _now(loss) - float(loss.min()),
        "log_loss_slope": _slope(steps, loss),
        "nonfinite": 1.0 if bad else 0.0,
        "log_step": math.log10(1.0 + float(steps[-1])),
    }


def _trend(steps: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of `y` over the rows of the last TREND_BATCHES batches, per 100 batches."""
    keep = steps >= steps[-1] - TREND_BATCHES
    s, y = steps[keep].astype(np.float64), y[keep]
    if len(s) < 2:
        return 0.0
    s = s - s.mean()
    return 100.0 * float(s @ (y - y.mean())) / float(s @ s)


def portable_features(h: HistoryView) -> dict[str, float]:
    """PORTABLE_FEATURES of the full rows of `h` (at least one). The loss-vs-chance features need
    `h.chance_loss`; without it they are NaN (a predictor reading them refuses such a model first:
    `LearnedPredictor.refusal`)."""
    f = h.full_rows()
    if len(f) == 0:
        raise ValueError(f"member {h.member}: no full-metric row yet; features need at least one")
    steps = f.step
    start = steps <= steps[0] + START_BATCHES
    now = steps >= steps[-1] - NOW_BATCHES

    def rise(y: np.ndarray) -> float:
        return median(y[now]) - median(y[start])

    rms = safe_log10(f["grad_rms_ratio"])
    # the per-entry ratio is the raw one times a constant of the member (its entry counts), so its rise
    # is the raw ratio's, taken from the two norms (defined when either blew up)
    ratio = log_ratio(f)
    logit, loss = safe_log10(f["max_logit"]), safe_log10(f["loss"])
    chance = h.chance_loss
    log_chance = math.log10(chance) if chance is not None and chance > 0 else math.nan
    loss_now = median(loss[now])
    bad = any(not np.isfinite(h[k]).all() for k in ("loss", "max_logit")) or any(
        not np.isfinite(f[k]).all() for k in ("grad_eph", "grad_slow", "w_eph", "w_slow"))
    return {
        "rms_ratio_start": median(rms[start]),
        "rms_ratio_now": median(rms[now]),
        "ratio_rise": rise(ratio),
        "ratio_trend": _trend(steps, ratio),
        "grad_slow_rise": rise(safe_log10(f["grad_slow"])),
        "grad_eph_rise": rise(safe_log10(f["grad_eph"])),
        "w_slow_rise": rise(safe_log10(f["w_slow"])),
        "w_eph_rise": rise(safe_log10(f["w_eph"])),
        "max_logit_rise": rise(logit),
        "max_logit_trend": _trend(steps, logit),
        "loss_vs_chance_now": loss_now - log_chance,
        "loss_vs_chance_best": float(loss.min()) - log_chance,
        "loss_above_best": loss_now - float(loss.min()),
        "loss_trend": _trend(steps, loss),
        "nonfinite": 1.0 if bad else 0.0,
        "log_step": math.log10(1.0 + float(steps[-1])),
    }


def transition_features(h: HistoryView) -> dict[str, float]:
    """TRANSITION_FEATURES of the full rows of `h`: log10 transition_max now, at its peak so far, and now
    minus the first full row (a non-finite value reads as LOG_CAP, as everywhere)."""
    f = h.full_rows()
    if len(f) == 0:
        raise ValueError(f"member {h.member}: no full-metric row yet; features need at least one")
    x = safe_log10(f["transition_max"])
    return {"log_transition_now": _now(x), "log_transition_peak": float(x.max()),
            "log_transition_growth": _now(x) - float(x[0])}


def hyper_features(h: HistoryView) -> dict[str, float]:
    """HYPER_FEATURES from the member's hyperparameters by role (plasticity: eta, beta_scale for the families)."""
    if h.hyper is None:
        raise ValueError(f"member {h.member}: this predictor reads hyperparameters, but the history has none "
                         "(give OnlineWarner the members' hypers)")
    lr, pl = float(h.hyper["lr"]), float(h.hyper["plasticity"])
    logs = safe_log10(np.array([lr, pl, lr * pl]))
    return {"log_lr": float(logs[0]), "log_plasticity": float(logs[1]), "log_lr_x_plasticity": float(logs[2])}


def feature_matrix(histories: list[HistoryView], names: tuple[str, ...]) -> np.ndarray:
    """(len(histories), len(names)) float64."""
    want_hyper = any(n in HYPER_FEATURES for n in names)
    want_transition = any(n in TRANSITION_FEATURES for n in names)
    want_portable = any(n in PORTABLE_FEATURES for n in names)
    want_trajectory = any(n in TRAJECTORY_FEATURES and not (want_portable and n in PORTABLE_FEATURES) for n in names)
    rows = []
    for h in histories:
        d = trajectory_features(h) if want_trajectory else {}
        if want_portable:
            d.update(portable_features(h))
        if want_hyper:
            d.update(hyper_features(h))
        if want_transition:
            d.update(transition_features(h))
        rows.append([d[n] for n in names])
    return np.asarray(rows, dtype=np.float64).reshape(len(histories), len(names))
