"""Features of a member's history up to a batch: what the predictors read.

Every feature is a finite float whatever the metrics hold. Norms, logits, losses and the gradient
ratio are read in decades (log10); a metric that went NaN or infinite is read as LOG_CAP decades
(as large as anything gets), 0 as -LOG_CAP, so a blown-up run gives extreme but finite features
and `nonfinite` says that it happened. "now" is the median of the last NOW_ROWS full rows (one
noisy batch does not decide); slopes are least-squares over the last SLOPE_ROWS full rows, in
decades per 100 batches; "growth" is now minus the first full row.
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


def _now(x: np.ndarray) -> float:
    return float(np.median(x[-NOW_ROWS:]))


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


def hyper_features(h: HistoryView) -> dict[str, float]:
    if h.hyper is None:
        raise ValueError(f"member {h.member}: this predictor reads hyperparameters, but the history has none "
                         "(give OnlineWarner the members' hypers)")
    lr, pl = float(h.hyper["lr"]), float(h.hyper["plasticity"])
    return {"log_lr": math.log10(lr), "log_plasticity": math.log10(pl), "log_lr_x_plasticity": math.log10(lr * pl)}


def feature_matrix(histories: list[HistoryView], names: tuple[str, ...]) -> np.ndarray:
    """(len(histories), len(names)) float64."""
    want_hyper = any(n in HYPER_FEATURES for n in names)
    rows = []
    for h in histories:
        d = trajectory_features(h)
        if want_hyper:
            d.update(hyper_features(h))
        rows.append([d[n] for n in names])
    return np.asarray(rows, dtype=np.float64).reshape(len(histories), len(names))
