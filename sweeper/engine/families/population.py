"""The fast-weight families' population engine: P members x B sequences trained by one tensor program.

Implements docs/families.md for many members at once; `reference.py` is its oracle, member by
member. Shape convention (as `forward.py`):

    (P,)            per member: hyperparameters lr, clip, eta | beta_scale, lambda; metrics
    (P, ...)        per member: slow weights, their gradients and Adam moments
    (P, B, T, n)    per member, sequence and character (inside `forward.py`)

Every member has its own hyperparameters, its own seed (initial weights from `init.py`, data from
`task.sample`, which draws each member's batch from its own seed alone) and its own slow weights,
stacked along the first axis. The gradient is taken by autograd through the batched forward pass
(BPTT): the objective handed to autograd is the sum of the members' objectives, and since no
operation mixes members, each member's gradient is exactly its own. Clipping and the optimizer step
(SGD, or Adam written out on the stacked tensors as `torch.optim.Adam` computes it) are per member.
Members can be dropped at any batch; their rows leave every stacked tensor, so their compute stops.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...config import ConfigError
from ...outcomes import Outcome
from ...tasks.base import EVAL_STREAM, TRAIN_STREAM
from ..members import MemberBook
from ..population import ADAM_BETAS, ADAM_EPS, memory_budget
from .config import FamilyRun, FastWeightsModel
from .forward import FORMS, FWP_CHUNK, BatchForward, fastweights_forward, fwp_forward, resolve_form
from .init import fastweights_fast_names, fwp_fast_names, init_fastweights, init_fwp
from .metrics import FAMILY_METRIC_NAMES

CLIP_EPS = 1e-6
"""g <- g * min(1, clip / (||g|| + CLIP_EPS)), as torch.nn.utils.clip_grad_norm_."""


@dataclass(frozen=True)
class FamilyStepMetrics:
    """Metrics of one batch for the members still running. Arrays are (n,), aligned with `member`.

    Every metric of FAMILY_METRIC_NAMES is set on every batch (they come with the gradient the step
    needs anyway); `full` marks the batches `train.metrics_every` samples, as for the ephemeral
    engine's StepMetrics."""

    step: int
    """Batch index (0-based) these metrics describe."""
    member: np.ndarray
    """Index of each row's member in the population as it was created."""
    loss: np.ndarray
    acc: np.ndarray
    mem_acc: np.ndarray
    max_logit: np.ndarray
    w_slow: np.ndarray
    fast_norm: np.ndarray
    grad_fast: np.ndarray
    grad_rest: np.ndarray
    grad_fast_ratio: np.ndarray
    grad_fast_rms_ratio: np.ndarray
    transition_max: np.ndarray
    exploded: np.ndarray
    """True for members that exploded at this step (first time)."""
    full: bool
    """True on the batches `train.metrics_every` samples (and the last of the budget)."""

    def for_member(self, member: int) -> dict[str, float]:
        row = int(np.flatnonzero(self.member == member)[0])
        return {name: float(getattr(self, name)[row]) for name in FAMILY_METRIC_NAMES}

    def rows(self):
        """One dict per member: {'member', 'step', metric...}."""
        for r, m in enumerate(self.member):
            d = {"member": int(m), "step": self.step}
            d.update({name: float(getattr(self, name)[r]) for name in FAMILY_METRIC_NAMES})
            yield d


def estimate_bytes(run: FamilyRun, n_members: int, form: str = "auto", chunk: int = FWP_CHUNK) -> int:
    """A pre-flight upper estimate of the engine's memory: weights, optimizer state, and what autograd
    keeps of one batch's forward pass (the fast state of every character in the 'matrix' form, the
    character-pair scores in the 'attention' form)."""
    V, T, B = len(run.task.vocab), run.task.seq_len, run.train.batch_size
    size = 4 if run.train.dtype == "float32" else 8
    model = run.model
    attention = resolve_form(model, T, form) == "attention"
    if isinstance(model, FastWeightsModel):
        H, S = model.hidden, model.inner_steps
        n_params = 2 * H * V + H * H + 2 * H + V
        fast = T * T * H * (S + 1) if attention else T * 3 * H * H
        per_sequence = fast + T * ((S + 2) * 6 * H + 3 * V)
    else:
        D, K, Dv, L = model.d_model, model.d_key, model.d_value, model.layers
        n_params = 2 * D * V + V + L * (2 * K * D + 2 * Dv * D + 3 * D + 1)
        C = min(T, chunk)
        fast = L * (T * C * 8 + (T // C + 1) * 2 * Dv * K) if attention else L * T * 4 * Dv * K
        per_sequence = fast + T * (L * 6 * (2 * K + Dv + D + 2) + 3 * V + D)
    per_member = n_params * (4 if run.train.optimizer == "adam" else 3)
    return int(n_members * (per_member + B * per_sequence) * size * 2)


def rows(t: torch.Tensor) -> torch.Tensor:
    """(P, ...) -> (P, n): one row per member (also for per-member scalars, (P,) -> (P, 1))."""
    return t.reshape(t.shape[0], -1)


class FamilyPopulation(MemberBook):
    """Trains members (one FastWeightsHyper or FWPHyper each) of one `FamilyRun` together.

    `device`: where the tensors live (default `run.train.device`). `form`: how the fast
    state is read ('auto', 'matrix' or 'attention'; `forward.fastweights_forward`, `forward.fwp_forward`),
    the same numbers up to rounding; `chunk`: the characters fwp's 'attention' form takes at once."""

    def __init__(self, run: FamilyRun, hypers: Sequence[Any], device: str | None = None, *,
                 budget_bytes: int | None = None, form: str = "auto", chunk: int = FWP_CHUNK):
        if not isinstance(run, FamilyRun):
            raise ConfigError("run", f"got {type(run).__name__}; expected FamilyRun")
        hypers = list(hypers)
        if form not in FORMS:
            raise ConfigError("form", f"got {form!r}; expected one of {FORMS}")
        if not isinstance(chunk, int) or chunk < 1:
            raise ConfigError("chunk", f"got {chunk!r}; expected a positive integer")
        if not hypers:
            raise ConfigError("members", "got none; expected at least one member")
        for i, h in enumerate(hypers):
            run.check_hyper(h, i)
        device = run.train.device if device is None else device
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError("train.device", f"got {device!r} but no CUDA device is available")
        need = estimate_bytes(run, len(hypers), form, chunk)
        budget = memory_budget(device) if budget_bytes is None else budget_bytes
        if need > budget:
            raise ConfigError(
                "population",
                f"needs about {need / 2**30:.2f} GiB but {budget / 2**30:.2f} GiB are available on {device}; "
                "use fewer members, a smaller batch_size, model or sequence length",
            )

        self.config, self.task, self.model, self.cfg = run, run.task, run.model, run.train
        self.hypers = hypers
        self.V, self.T, self.B = len(run.task.vocab), run.task.seq_len, run.train.batch_size
        self.device, self.dtype = torch.device(device), getattr(torch, run.train.dtype)
        self.fastweights = isinstance(self.model, FastWeightsModel)
        self.form, self.chunk = form, chunk
        dev, dt = self.device, self.dtype

        init = init_fastweights if self.fastweights else init_fwp
        inits = [init(self.model, self.V, h, dtype=torch.float64) for h in hypers]  # drawn in float64, then cast
        self.names = tuple(inits[0])
        self.params = {n: torch.stack([m[n] for m in inits]).to(device=dev, dtype=dt).contiguous()
                       for n in self.names}  # {name: (P, ...)}
        fast = fastweights_fast_names(self.model) if self.fastweights else fwp_fast_names(self.model, self.names)
        self.fast_names = tuple(n for n in self.names if n in fast)
        self.rest_names = tuple(n for n in self.names if n not in fast)
        self.n_fast = sum(self.params[n][0].numel() for n in self.fast_names)
        self.n_rest = sum(self.params[n][0].numel() for n in self.rest_names)

        def per_member(name):
            return torch.tensor([getattr(h, name) for h in hypers], dtype=dt, device=dev)  # (P,)

        # Per-member state: every tensor here has the member axis first; `drop` keeps them aligned.
        self._open_book(len(hypers), dev)  # member_ids, outcomes, the explosion rule's window
        self.seeds = np.array([h.seed for h in hypers], dtype=np.int64)  # (P,), host side for task.sample
        self.lr, self.clip, self.lam = per_member("lr"), per_member("clip"), per_member("lam")  # (P,) each
        self.rate = per_member("eta" if self.fastweights else "beta_scale")  # (P,): eta, resp. beta_scale
        self.adam_step = 0
        if self.cfg.optimizer == "adam":
            self.adam_m = {n: torch.zeros_like(v) for n, v in self.params.items()}  # {name: (P, ...)}
            self.adam_v = {n: torch.zeros_like(v) for n, v in self.params.items()}  # {name: (P, ...)}

    # ------------------------------------------------------------------ state handling

    _PER_MEMBER = ("member_ids", "lr", "clip", "lam", "rate", "loss_hist", "best_window", "above_since", "above_last")
    _PER_MEMBER_DICTS = ("params", "adam_m", "adam_v")

    def drop(self, members: Iterable[int], outcome: Outcome = Outcome.STOPPED_EARLY) -> None:
        """Stop training these members (original indices). The others go on; their work shrinks."""
        keep = self._mark_dropped(members, outcome)
        if keep is None:
            return
        idx = torch.from_numpy(np.flatnonzero(keep)).to(self.device)
        for name in self._PER_MEMBER:
            setattr(self, name, getattr(self, name).index_select(0, idx))
        for name in self._PER_MEMBER_DICTS:
            if hasattr(self, name):
                setattr(self, name, {n: v.index_select(0, idx) for n, v in getattr(self, name).items()})
        self.seeds = self.seeds[keep]

    def state_dict(self, member: int) -> dict[str, torch.Tensor]:
        """Member `member`'s (original index) current slow weights, {name: CPU copy}, named and ordered
        as the reference's `state_dict()`."""
        if member not in self.alive:
            raise KeyError(f"member {member} is not in the population (dropped or out of range)")
        row = self.alive.index(member)
        return {n: self.params[n][row].detach().to("cpu", copy=True) for n in self.names}

    # ------------------------------------------------------------------ one batch

    def _forward(self, params: dict[str, torch.Tensor], x: torch.Tensor,
                 rate: torch.Tensor | None = None) -> BatchForward:
        rate = self.rate if rate is None else rate  # (P,): eta, resp. beta_scale
        if self.fastweights:
            return fastweights_forward(self.model, params, rate, self.lam, x, self.form)
        return fwp_forward(self.model, params, rate, self.lam, x, self.form, self.chunk)

    def _sample(self, batch_index: int, stream: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens (P, B, T + 1) and memory marks (P, B, T) of every member's batch `batch_index`."""
        batch = self.task.sample(self.seeds, batch_index, self.B, stream=stream)
        tokens = torch.from_numpy(batch.tokens).to(self.device)
        return tokens, torch.from_numpy(batch.memory).to(self.device)

    @staticmethod
    def _prediction_sums(logits: torch.Tensor, tokens: torch.Tensor, memory: torch.Tensor):
        """Per member (P,) float64: summed loss, correct predictions, memory positions, correct ones there;
        and the per-character losses (P, B, T) (attached to the graph when the logits are)."""
        y = tokens[..., 1:]  # (P, B, T)
        nll = -torch.log_softmax(logits, dim=-1).gather(-1, y.unsqueeze(-1)).squeeze(-1)  # (P, B, T)
        with torch.no_grad():
            correct = logits.argmax(-1) == y  # (P, B, T)
            sums = (nll.detach().double().sum((1, 2)), correct.double().sum((1, 2)),
                    memory.double().sum((1, 2)), (correct & memory).double().sum((1, 2)))
        return nll, sums

    def _step_slow(self, grads: dict[str, torch.Tensor]) -> None:
        """Clip each member's gradient to its global norm `clip`, then one SGD or Adam step, in place."""
        def view(t, like):
            return t.view(-1, *([1] * (like.dim() - 1)))

        norm = torch.sqrt(sum(rows(g).square().sum(1) for g in grads.values()))  # (P,)
        coef = torch.clamp(self.clip / (norm + CLIP_EPS), max=1.0)
        coef = torch.where(torch.isfinite(self.clip), coef, torch.ones_like(coef))  # clip inf: untouched
        grads = {n: g * view(coef, g) for n, g in grads.items()}
        if self.cfg.optimizer == "sgd":
            for n, g in grads.items():
                self.params[n].addcmul_(g, view(-self.lr, g))
            return
        self.adam_step += 1  # torch.optim.Adam, single-tensor form, per-member lr
        b1, b2 = ADAM_BETAS
        bc1, bc2 = 1 - b1**self.adam_step, 1 - b2**self.adam_step
        step_size = -(self.lr / bc1)  # (P,)
        for n, g in grads.items():
            m, v = self.adam_m[n], self.adam_v[n]
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v.sqrt() / math.sqrt(bc2)).add_(ADAM_EPS)
            self.params[n].addcmul_(m / denom, view(step_size, g))

    def _train_batch(self) -> dict[str, torch.Tensor]:
        """Forward, BPTT gradient, clip and step for every member; returns the metrics, (P,) each."""
        tokens, memory = self._sample(self.batch_index, TRAIN_STREAM)
        leaves = {n: v.detach().requires_grad_(True) for n, v in self.params.items()}
        with torch.enable_grad():
            fwd = self._forward(leaves, tokens[..., :-1])
            nll, (loss_sum, correct, mem_n, mem_correct) = self._prediction_sums(fwd.logits, tokens, memory)
            # The sum of every member's J = (1/B) sum_b sum_t loss_t(b): each member's gradient is its own.
            J = nll.sum() / self.B
            grads = torch.autograd.grad(J, list(leaves.values()), allow_unused=True)
        with torch.no_grad():
            grads = {n: torch.zeros_like(leaves[n]) if g is None else g for n, g in zip(self.names, grads)}
            del leaves, nll, J

            def sq_norm(names):  # (P,) float64
                zero = torch.zeros(self.size, dtype=torch.float64, device=self.device)
                return sum((rows(grads[n].double()).square().sum(1) for n in names), zero)

            grad_fast, grad_rest = torch.sqrt(sq_norm(self.fast_names)), torch.sqrt(sq_norm(self.rest_names))
            self._step_slow(grads)
            nan = torch.full_like(grad_rest, math.nan)
            ok = grad_rest != 0
            n_chars = self.B * self.T
            return {
                "loss": loss_sum / n_chars,
                "acc": correct / n_chars,
                "mem_acc": mem_correct / mem_n,  # NaN (0/0) when the batch has no memory position
                "max_logit": fwd.logits.detach().abs().flatten(1).amax(1).double(),
                "w_slow": torch.sqrt(sum(rows(p.double()).square().sum(1) for p in self.params.values())),
                "fast_norm": torch.sqrt(fwd.fast_sq.mean(1)),
                "grad_fast": grad_fast,
                "grad_rest": grad_rest,
                "grad_fast_ratio": torch.where(ok, grad_fast / grad_rest, nan),
                "grad_fast_rms_ratio": torch.where(
                    ok, (grad_fast / math.sqrt(self.n_fast)) / (grad_rest / math.sqrt(self.n_rest)), nan),
                "transition_max": nan if fwd.transition is None else fwd.transition.double(),
            }

    # ------------------------------------------------------------------ public API

    def step(self) -> FamilyStepMetrics:
        """Train every running member on its next batch; return that batch's metrics."""
        cfg, i = self.cfg, self.batch_index
        out = self._train_batch()
        exploded = self._check_explosion(out["loss"], out["max_logit"])
        host = torch.stack([out[k] for k in FAMILY_METRIC_NAMES]).cpu().numpy()  # (n_metrics, P): one transfer
        metrics = FamilyStepMetrics(
            step=i,
            member=self.member_ids.cpu().numpy(),
            exploded=exploded,
            full=i % cfg.metrics_every == 0 or i == cfg.batches - 1,
            **{name: host[j] for j, name in enumerate(FAMILY_METRIC_NAMES)},
        )
        # Every metric is computed on every batch: `final` follows each batch (up to an explosion).
        self._record_final(i, metrics.member, exploded, True,
                           {name: host[j] for j, name in enumerate(FAMILY_METRIC_NAMES)})
        self._end_batch(metrics.member[exploded].tolist())
        return metrics

    @torch.no_grad()
    def evaluate(self, n_batches: int = 10, fast: bool = True) -> dict[str, np.ndarray]:
        """Fresh sequences of EVAL_STREAM (batch indices 0 .. n_batches-1), slow weights frozen, the fast
        state running as in training. Returns member and loss, acc, mem_acc over all their characters,
        arrays aligned with `self.alive` (as the reference's `evaluate`).

        `fast=False` holds every fast state at 0 (nothing is written to it; what the slow weights do
        alone): fastweights with eta = 0, so A_t = 0 (h still carries the slow recurrence W h); fwp with
        every layer's value projection W_V = 0, so each write is 0 and each read W_t phi(q_t) = 0."""
        if n_batches < 1:
            raise ValueError(f"n_batches: got {n_batches}; expected at least 1")
        params, rate = self.params, self.rate
        if not fast:
            if self.fastweights:
                rate = torch.zeros_like(self.rate)
            else:
                params = {n: torch.zeros_like(v) if n.endswith(".W_V") else v for n, v in self.params.items()}
        totals = None
        for j in range(n_batches):
            tokens, memory = self._sample(j, EVAL_STREAM)
            fwd = self._forward(params, tokens[..., :-1], rate)
            _, sums = self._prediction_sums(fwd.logits, tokens, memory)
            totals = sums if totals is None else tuple(a + b for a, b in zip(totals, sums))
        loss_sum, correct, mem_n, mem_correct = (t.cpu().numpy() for t in totals)
        n = n_batches * self.B * self.T
        with np.errstate(invalid="ignore", divide="ignore"):
            mem_acc = mem_correct / mem_n
        return {"member": np.asarray(self.alive), "loss": loss_sum / n, "acc": correct / n, "mem_acc": mem_acc}


__all__ = ["FamilyPopulation", "FamilyStepMetrics", "estimate_bytes", "CLIP_EPS"]
