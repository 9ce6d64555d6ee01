"""Reference implementations of the fast-weight families: docs/families.md for ONE member.

What this is
------------
The test oracle of any faster (batched, population) implementation of the families, written as
plainly as it can be: for each batch, for each sequence, for each character, an explicit step of
the fast state, exactly in the order docs/families.md states it; the slow gradients come from torch
autograd through the whole sequence (BPTT), and the step from `torch.optim.SGD` / `torch.optim.Adam`
after `torch.nn.utils.clip_grad_norm_`. It always runs on the CPU, in `run.train.dtype`.

Leave it alone once it is right
-------------------------------
Do not optimise it, vectorise it over sequences or "tidy" it to look like a fast engine: an oracle
that shares the fast engine's structure shares its bugs. Change it only when docs/families.md
changes, and then change the page, this file and tests/engine/test_families_reference.py together.

Choices the contract leaves open, made here:

- `evaluate` runs fresh sequences of EVAL_STREAM with the slow weights frozen; the fast state is
  part of the model and runs exactly as in training (from 0 at each sequence).
- `transition_max` is taken from the training forward pass, i.e. with the slow weights of the start
  of the batch (before its update).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

import torch

from ...config import ConfigError
from ...tasks.base import EVAL_STREAM, TRAIN_STREAM
from ..reference import explosion  # the explosion rule (docs/engine.md) is the same for every family
from .config import FamilyRun
from .init import fastweights_fast_names, fwp_fast_names, init_fastweights, init_fwp
from .metrics import FAMILY_METRIC_NAMES

LN_EPS = 1e-5
"""Layer normalization: (a - mean) / sqrt(var + LN_EPS), var the biased (population) variance."""
L2_EPS = 1e-12
"""silu_l2: s / max(||s||_2, L2_EPS), as torch.nn.functional.normalize."""


class SequenceOut(NamedTuple):
    """One sequence's forward pass."""

    logits: torch.Tensor
    """(T, V): z_t for t = 0 .. T-1 (attached to the graph when the parameters require grad)."""
    fast: tuple[torch.Tensor, ...]
    """The fast state(s) after the last character: (A,) for fastweights, one W per layer for fwp."""
    transition: list[torch.Tensor]
    """Delta rules: eta_t ||phi(k_t)||^2 (0-d, detached) for every character and layer; else empty."""
    trace: list | None
    """With trace=True, one record per character (see each family's `sequence`)."""


class _Reference:
    """What both families share: data, objective, optimizer, metrics. Subclasses define `sequence`."""

    family = ""

    def __init__(self, run: FamilyRun, hyper):
        if not isinstance(run, FamilyRun):
            raise ConfigError("run", f"got {type(run).__name__}; expected FamilyRun")
        if run.family != self.family:
            raise ConfigError("model", f"got a {run.family} model; {type(self).__name__} runs {self.family}")
        run.check_hyper(hyper)
        self.run = run
        self.hyper = hyper
        self.model = run.model
        self.task = run.task
        self.batch_size = run.train.batch_size
        self.dtype = {"float32": torch.float32, "float64": torch.float64}[run.train.dtype]
        self.V = len(self.task.vocab)
        self.T = self.task.seq_len
        init = self._init()
        self.params: dict[str, torch.Tensor] = {k: v.clone().requires_grad_(True) for k, v in init.items()}
        self.fast_names = self._fast_names()
        self.rest_names = tuple(n for n in self.params if n not in self.fast_names)
        self.n_fast = sum(self.params[n].numel() for n in self.fast_names)
        self.n_rest = sum(self.params[n].numel() for n in self.rest_names)
        plist = list(self.params.values())
        if run.train.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(plist, lr=hyper.lr)
        else:
            self.optimizer = torch.optim.Adam(plist, lr=hyper.lr)
        self.batch_index = 0

    # Subclass hooks --------------------------------------------------------------------------

    def _init(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _fast_names(self) -> tuple[str, ...]:
        raise NotImplementedError

    def sequence(self, xs, params=None, trace: bool = False) -> SequenceOut:
        raise NotImplementedError

    # The objective ---------------------------------------------------------------------------

    def sample(self, batch_index: int, stream: int = TRAIN_STREAM):
        """(tokens, memory) of batch `batch_index`: lists (B, T+1) of ints and (B, T) of bools."""
        batch = self.task.sample([self.hyper.seed], batch_index, self.batch_size, stream)
        return batch.tokens[0].tolist(), batch.memory[0].tolist()

    def objective(self, tokens, params=None) -> tuple[torch.Tensor, list[SequenceOut]]:
        """(1/B) sum_b sum_t -log p_t(b)[y_t(b)] over the batch `tokens`, and each sequence's output."""
        outs = [self.sequence(seq[:-1], params) for seq in tokens]
        total = 0
        for seq, out in zip(tokens, outs):
            y = torch.tensor(seq[1:])
            logp = torch.log_softmax(out.logits, dim=1)
            total = total + (-logp[torch.arange(len(y)), y]).sum()
        return total / len(tokens), outs

    # Training --------------------------------------------------------------------------------

    def train_batch(self) -> dict[str, float]:
        """Train on the next batch (batch_index 0, 1, 2, ...) and return its metrics (docs/families.md)."""
        tokens, memory = self.sample(self.batch_index, TRAIN_STREAM)
        names = list(self.params)
        plist = [self.params[n] for n in names]
        with torch.enable_grad():
            obj, outs = self.objective(tokens)
            grads = torch.autograd.grad(obj, plist, allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(plist, grads)]
        gnorm = dict(zip(names, (float((g.double() ** 2).sum()) for g in grads)))
        grad_fast = math.sqrt(sum(gnorm[n] for n in self.fast_names))
        grad_rest = math.sqrt(sum(gnorm[n] for n in self.rest_names))
        for p, g in zip(plist, grads):
            p.grad = g.clone()
        if math.isfinite(self.hyper.clip):
            torch.nn.utils.clip_grad_norm_(plist, self.hyper.clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.batch_index += 1

        out = self._prediction_metrics(tokens, memory, outs)
        with torch.no_grad():
            w_slow = math.sqrt(sum(float((p.double() ** 2).sum()) for p in plist))
            fast_sq = [sum(float((s.detach().double() ** 2).sum()) for s in o.fast) for o in outs]
            transitions = [x for o in outs for x in o.transition]
            transition_max = float(torch.stack(transitions).max()) if transitions else math.nan
        if grad_rest == 0:
            ratio = rms_ratio = math.nan
        else:
            ratio = grad_fast / grad_rest
            rms_ratio = (grad_fast / math.sqrt(self.n_fast)) / (grad_rest / math.sqrt(self.n_rest))
        out.update(
            w_slow=w_slow,
            fast_norm=math.sqrt(sum(fast_sq) / len(fast_sq)),
            grad_fast=grad_fast,
            grad_rest=grad_rest,
            grad_fast_ratio=ratio,
            grad_fast_rms_ratio=rms_ratio,
            transition_max=transition_max,
        )
        return {k: out[k] for k in FAMILY_METRIC_NAMES}

    def train(self, batches: int | None = None) -> Iterator[dict[str, float]]:
        """Train on the next `batches` batches (default run.train.batches), yielding each one's metrics."""
        n = self.run.train.batches if batches is None else batches
        for _ in range(n):
            yield self.train_batch()

    @staticmethod
    def _prediction_metrics(tokens, memory, outs) -> dict[str, float]:
        n = correct = mem_n = mem_correct = 0
        loss_sum = 0.0
        max_logit = None
        with torch.no_grad():
            for seq, mem, out in zip(tokens, memory, outs):
                z = out.logits.detach()
                logp = torch.log_softmax(z, dim=1)
                for t, y in enumerate(seq[1:]):
                    n += 1
                    loss_sum += float(-logp[t, y])
                    right = int(torch.argmax(z[t])) == y
                    correct += right
                    if mem[t]:
                        mem_n += 1
                        mem_correct += right
                m = z.abs().max()
                max_logit = m if max_logit is None else torch.maximum(max_logit, m)
        return {
            "loss": loss_sum / n,
            "acc": correct / n,
            "mem_acc": mem_correct / mem_n if mem_n else math.nan,
            "max_logit": float(max_logit),
        }

    def evaluate(self, n_batches: int) -> dict[str, float]:
        """Fresh sequences of EVAL_STREAM (batch indices 0 .. n_batches-1), slow weights frozen, the
        fast state running as in training. Returns loss, acc and mem_acc over all their characters."""
        if n_batches < 1:
            raise ValueError(f"n_batches: got {n_batches}; expected at least 1")
        tokens_all, memory_all, outs_all = [], [], []
        with torch.no_grad():
            for j in range(n_batches):
                tokens, memory = self.sample(j, EVAL_STREAM)
                tokens_all += tokens
                memory_all += memory
                outs_all += [self.sequence(seq[:-1]) for seq in tokens]
        m = self._prediction_metrics(tokens_all, memory_all, outs_all)
        return {k: m[k] for k in ("loss", "acc", "mem_acc")}

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The current slow weights, {name: detached copy}, in parameter order."""
        return {k: v.detach().clone() for k, v in self.params.items()}


# ------------------------------------------------------------------------------------------------
# fastweights (Ba et al. 2016)


class FastWeightsReference(_Reference):
    """One fastweights member (docs/families.md, "fastweights").

    `params`: C (H, V), W (H, H), ln_gain, ln_bias (H; with layer_norm), W_out (V, H), b_out (V).
    """

    family = "fastweights"

    def _init(self):
        return init_fastweights(self.model, self.V, self.hyper, dtype=self.dtype)

    def _fast_names(self):
        return fastweights_fast_names(self.model)

    def _f(self, a):
        return torch.relu(a) if self.model.activation == "relu" else torch.tanh(a)

    @staticmethod
    def _layer_norm(a, gain, bias):
        mean = a.mean()
        var = ((a - mean) ** 2).mean()
        return gain * (a - mean) / torch.sqrt(var + LN_EPS) + bias

    def sequence(self, xs, params=None, trace: bool = False) -> SequenceOut:
        """Forward one sequence of input tokens xs (length T) from h = 0, A = 0.

        trace records, per character: `pre` (W h_(t-1) + C x_t), `inner` (h^(0) .. h^(S)), `h` (h_t),
        `A_before` (A_(t-1), the matrix read at this character) and `A` (A_t, after the write).
        """
        p = self.params if params is None else params
        model, hyper = self.model, self.hyper
        H = model.hidden
        h = torch.zeros(H, dtype=self.dtype)
        A = torch.zeros(H, H, dtype=self.dtype)
        logits, records = [], [] if trace else None
        for x in xs:
            pre = p["W"] @ h + p["C"][:, x]  # C onehot(x_t) is column x_t of C
            hs = self._f(pre)  # h^(0): no layer norm
            inner = [hs]
            for _ in range(model.inner_steps):
                a = pre + A @ hs
                if model.layer_norm:
                    a = self._layer_norm(a, p["ln_gain"], p["ln_bias"])
                hs = self._f(a)
                inner.append(hs)
            A_before = A
            h = hs
            A = hyper.lam * A + hyper.eta * torch.outer(h, h)
            logits.append(p["W_out"] @ h + p["b_out"])
            if trace:
                records.append({"pre": pre, "inner": inner, "h": h, "A_before": A_before, "A": A})
        return SequenceOut(torch.stack(logits), (A,), [], records)


# ------------------------------------------------------------------------------------------------
# fwp (fast weight programmers)


class FWPReference(_Reference):
    """One fwp member (docs/families.md, "fwp").

    `params`: E (d_model, V); per layer l `layers.l.W_Q` (d_k, d_model), `W_K` (d_k, d_model),
    `W_V` (d_v, d_model), `w_b` (d_model; delta rules), `w_l` (d_model) and `b_l` (scalar; decay
    'learned'), `W_O` (d_model, d_v); W_out (V, d_model), b_out (V).
    """

    family = "fwp"

    def _init(self):
        return init_fwp(self.model, self.V, self.hyper, dtype=self.dtype)

    def _fast_names(self):
        return fwp_fast_names(self.model, self.params)

    def _phi(self, a):
        kind = self.model.phi
        if kind == "identity":
            return a
        if kind == "elu1":
            return torch.nn.functional.elu(a) + 1
        s = torch.nn.functional.silu(a)  # silu_l2
        return s / torch.clamp(torch.linalg.vector_norm(s), min=L2_EPS)

    def _psi(self, b):
        return torch.sigmoid(b) if self.model.psi == "sigmoid" else 2 * torch.sigmoid(b)

    def _decay(self, p, pre, u):
        decay = self.model.decay
        if decay == "none":
            return 1.0
        if decay == "constant":
            return self.hyper.lam
        return torch.sigmoid(p[pre + "w_l"] @ u + p[pre + "b_l"])  # learned

    def sequence(self, xs, params=None, trace: bool = False) -> SequenceOut:
        """Forward one sequence of input tokens xs (length T) from W = 0 in every layer.

        trace records, per character, a list over layers of dicts: `u` (the layer input), `q`, `k`,
        `v`, `phi_q`, `phi_k`, `lam` (lambda_t), `eta` (eta_t; None for hebb), `W_before` (W_(t-1)),
        `W` (W_t) and `o` (W_t phi(q_t)).
        """
        p = self.params if params is None else params
        model, hyper = self.model, self.hyper
        Ws = [torch.zeros(model.d_value, model.d_key, dtype=self.dtype) for _ in range(model.layers)]
        logits, transition, records = [], [], [] if trace else None
        for x in xs:
            u = p["E"][:, x]  # E onehot(x_t)
            step = []
            for l in range(model.layers):
                pre = f"layers.{l}."
                q = p[pre + "W_Q"] @ u
                k = p[pre + "W_K"] @ u
                v = p[pre + "W_V"] @ u
                phi_q, phi_k = self._phi(q), self._phi(k)
                lam = self._decay(p, pre, u)
                W_before = Ws[l]
                eta = None
                if model.rule == "hebb":
                    W = lam * W_before + torch.outer(v, phi_k)
                else:
                    eta = hyper.beta_scale * self._psi(p[pre + "w_b"] @ u)
                    if model.rule == "delta":
                        W = W_before + eta * torch.outer(v - W_before @ phi_k, phi_k)
                    else:  # gated_delta
                        W = lam * W_before + eta * torch.outer(v - lam * (W_before @ phi_k), phi_k)
                    transition.append((eta * (phi_k @ phi_k)).detach())
                Ws[l] = W
                o = W @ phi_q
                if trace:
                    step.append(
                        {"u": u, "q": q, "k": k, "v": v, "phi_q": phi_q, "phi_k": phi_k, "lam": lam, "eta": eta,
                         "W_before": W_before, "W": W, "o": o}
                    )
                u = u + p[pre + "W_O"] @ o
            logits.append(p["W_out"] @ u + p["b_out"])
            if trace:
                records.append(step)
        return SequenceOut(torch.stack(logits), tuple(Ws), transition, records)


REFERENCES = {"fastweights": FastWeightsReference, "fwp": FWPReference}


def make_reference(run: FamilyRun, hyper) -> _Reference:
    """The reference of run's family."""
    return REFERENCES[run.family](run, hyper)


__all__ = ["explosion", "FastWeightsReference", "FWPReference", "REFERENCES", "SequenceOut", "make_reference", "LN_EPS", "L2_EPS"]
