"""The population engine: P members x B sequences trained by one tensor program.

Implements docs/engine.md. Shape convention, used everywhere below:

    (P, ...)        per member: hyperparameters (P,), slow weights (P, n_out, n_in)
    (P, n, B)       per member and sequence, feature-major: activations, error signals, logits
    (N, B)          per masked entry and sequence: ephemeral values (N: all members' entries, `ell.py`)

Members never mix: every product is batched over P, so member p's numbers depend only on its own
config and seed. A hidden layer's product is split in two exact parts, W_eff h = S h + (E * M) h:
the slow matrix S (0 at the ephemeral positions) is shared by a member's sequences and goes through
one dense batched product, and the ephemeral part touches only the masked entries (`ell.Layout`).
Sequences are the innermost axis everywhere, so the dense products are plain matrix products and
the sparse ones move rows of B contiguous numbers. Slow-weight gradients are not formed per
character: the error signals and inputs of a whole batch are kept and contracted in one matrix
product at its end, which is the same sum in a cheaper order. BPTT's error signals are derived by
hand (below), like the other updaters', with no autograd graph.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..config import ConfigError, Hyper, RunConfig
from ..outcomes import Outcome
from ..tasks.base import EVAL_STREAM, TRAIN_STREAM
from . import ell
from .init import init_member, layer_sizes
from .members import MemberBook
from .metrics import METRIC_NAMES, StepMetrics

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def estimate_bytes(run: RunConfig, members: Sequence[Hyper]) -> int:
    """A pre-flight upper estimate of the engine's memory for this population."""
    V, T = len(run.task.vocab), run.task.seq_len
    B, P = run.train.batch_size, len(members)
    size = 4 if run.train.dtype == "float32" else 8
    sizes = layer_sizes(run.model, V)
    n_params = sum(o * i + o for o, i in sizes) + V * run.model.width + V
    per_member = n_params * size * (4 if run.train.optimizer == "adam" else 2) + sum(o * i for o, i in sizes)
    ratio = max(h.ratio for h in members) if run.model.kind == "ephemeral" else 0.0
    k = [min(i, ratio * i + 4 * math.sqrt(ratio * (1 - ratio) * i) + 1) if ratio > 0 else 0 for _, i in sizes]
    per_sequence = sum(o * kk for (o, _), kk in zip(sizes, k)) * size * 4  # values, gathered inputs, temporaries
    per_sequence += T * (sum(o + i for o, i in sizes) + 3 * V) * size  # activations kept for the slow update
    per_sequence += (T + 1) * (8 + V * size)  # tokens and one-hot inputs
    per_member += sum(o * kk for (o, _), kk in zip(sizes, k)) * 8  # column indices
    return int(P * (per_member + B * per_sequence))


def memory_budget(device: str) -> int:
    """Bytes the engine may use on `device`: most of what is free."""
    if device.startswith("cuda"):
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(0.8 * free)
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
        return int(0.7 * info["MemAvailable"])
    except (OSError, KeyError, ValueError):
        return int(0.7 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


class Population(MemberBook):
    """Trains `members` (one Hyper each) of one `RunConfig` together."""

    def __init__(self, run: RunConfig, members: Sequence[Hyper], *, budget_bytes: int | None = None):
        members = list(members)
        if not members:
            raise ConfigError("members", "got none; expected at least one member")
        for i, h in enumerate(members):
            if not isinstance(h, Hyper):
                raise ConfigError(f"members[{i}]", f"got {type(h).__name__}; expected a Hyper")
            run.check_hyper(h, i)
        cfg, model = run.train, run.model
        if cfg.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError("train.device", f"got {cfg.device!r} but no CUDA device is available")
        need = estimate_bytes(run, members)
        budget = memory_budget(cfg.device) if budget_bytes is None else budget_bytes
        if need > budget:
            raise ConfigError(
                "population",
                f"needs about {need / 2**30:.2f} GiB but {budget / 2**30:.2f} GiB are available on {cfg.device}; "
                "use fewer members, a smaller batch_size, width or sequence length",
            )

        self.config, self.task, self.model, self.cfg = run, run.task, model, cfg
        self.V, self.T, self.B = len(run.task.vocab), run.task.seq_len, cfg.batch_size
        self.L = model.depth
        self.device, self.dtype = torch.device(cfg.device), getattr(torch, cfg.dtype)
        self.hypers = members
        self.ephemeral = model.kind == "ephemeral"
        # Plain SGD steps each slow parameter in place (`_apply_slow`); Adam and gradient clipping need
        # the whole masked gradient first.
        self.sgd_in_place = cfg.optimizer == "sgd" and cfg.grad_clip is None

        inits = [init_member(model, self.V, h, dtype=torch.float64) for h in members]
        dev, dt = self.device, self.dtype

        def stack(get):
            return torch.stack([get(m) for m in inits]).to(device=dev, dtype=dt).contiguous()

        def per_member(name):
            return torch.tensor([getattr(h, name) for h in members], dtype=dt, device=dev)

        # Per-member state. Every tensor here has the member axis first; `drop` keeps them aligned.
        self._open_book(len(members), dev)  # member_ids, outcomes, the explosion rule's window
        self.seeds = np.array([h.seed for h in members], dtype=np.int64)
        self.lr, self.plasticity = per_member("lr"), per_member("plasticity")
        self.gamma, self.clip = per_member("gamma"), per_member("clip")
        self.S = [stack(lambda m, l=l: m.W[l]) for l in range(self.L)]  # (P, n_out, n_in)
        self.bias = [stack(lambda m, l=l: m.b[l]) for l in range(self.L)]  # (P, n_out)
        self.W_out, self.b_out = stack(lambda m: m.W_out), stack(lambda m: m.b_out)  # (P, V, n_L), (P, V)
        self.feedback = [stack(lambda m, l=l: m.feedback[l]) for l in range(self.L)]  # (P, n_l, V)
        masks = [[m.mask[l] for m in inits] for l in range(self.L)]
        self.slow_mask = [(~torch.stack(ms)).to(device=dev, dtype=dt) for ms in masks]  # (P, n_out, n_in)
        self.n_eph = torch.tensor([sum(int(m.mask[l].sum()) for l in range(self.L)) for m in inits], device=dev)
        n_total = sum(o * i + o for o, i in layer_sizes(model, self.V)) + self.V * model.width + self.V
        self.n_slow = n_total - self.n_eph
        self._buffers: dict[tuple, torch.Tensor] = {}
        self._index_entries()
        self.E = [torch.zeros(lay.N, self.B, dtype=dt, device=dev) for lay in self.layout]  # (N, B) per layer
        # True while every E is exactly 0 (from a reset to the next ephemeral step): the ephemeral
        # products then add exact zeros and are skipped. BPTT steps E only at the end of a sequence, so
        # with a reset every sequence its products are all skipped.
        self.E_zero = True
        self.adam_step = 0
        if cfg.optimizer == "adam":
            self.adam_m = [torch.zeros_like(p) for p in self._params()]
            self.adam_v = [torch.zeros_like(p) for p in self._params()]

    # ------------------------------------------------------------------ state handling

    _PER_MEMBER = ("member_ids", "lr", "plasticity", "gamma", "clip", "S", "bias", "W_out", "b_out",
                   "feedback", "slow_mask", "n_eph", "n_slow", "adam_m", "adam_v", "loss_hist", "best_window",
                   "above_since", "above_last")

    def _index_entries(self) -> None:
        """The masked entries of the members present (from `slow_mask`, which is 0 exactly there), and
        the per-member factors of the ephemeral step spread over them: (N, 1) each."""
        self.layout = [ell.Layout(m == 0, self.dtype) for m in self.slow_mask] if self.ephemeral else []
        self.gamma_e = [lay.per_entry(self.gamma) for lay in self.layout]
        self.clip_e = [lay.per_entry(self.clip) for lay in self.layout]
        self.step_e = [lay.per_entry(-(self.lr * self.plasticity)) for lay in self.layout]
        self.clipping = bool(torch.isfinite(self.clip).any())  # any member clips
        self._buffers.clear()
        self._sgd_coef = None  # built on first use (`_apply_slow`)

    def _scratch(self, *key, like: torch.Tensor | None = None, shape=None) -> torch.Tensor:
        """A work tensor shaped like `like` (or `shape`), allocated once and reused for every character:
        a fresh multi-MB tensor per operation costs more in page faults than the arithmetic it holds."""
        shape = torch.Size(like.shape if like is not None else shape)
        buf = self._buffers.get(key)
        if buf is None or buf.shape != shape:
            buf = self._buffers[key] = torch.empty(shape, dtype=self.dtype, device=self.device)
        return buf

    def _cat(self, key, tensors):
        """torch.cat along the last axis into a reused buffer."""
        shape = (*tensors[0].shape[:-1], sum(t.shape[-1] for t in tensors))
        return torch.cat(tensors, dim=-1, out=self._scratch("cat", *key, shape=shape))

    def _params(self) -> list[torch.Tensor]:
        return [*self.S, *self.bias, self.W_out, self.b_out]

    def _set_params(self, params: list[torch.Tensor]) -> None:
        L = self.L
        self.S, self.bias, self.W_out, self.b_out = params[:L], params[L:2 * L], params[2 * L], params[2 * L + 1]

    def drop(self, members: Iterable[int], outcome: Outcome = Outcome.STOPPED_EARLY) -> None:
        """Stop training these members (original indices). The others go on; their work shrinks."""
        keep = self._mark_dropped(members, outcome)
        if keep is None:
            return
        keep = torch.from_numpy(keep).to(self.device)
        idx = keep.nonzero().squeeze(1)
        self.E = [E[keep.repeat_interleave(lay.counts)] for E, lay in zip(self.E, self.layout)]
        for name in self._PER_MEMBER:
            if not hasattr(self, name):
                continue
            value = getattr(self, name)
            if isinstance(value, list):
                setattr(self, name, [v.index_select(0, idx) for v in value])
            elif isinstance(value, torch.Tensor) and value.dim() > 0:
                setattr(self, name, value.index_select(0, idx))
        self.seeds = self.seeds[keep.cpu().numpy()]
        self._index_entries()

    # ------------------------------------------------------------------ one sequence

    def _act_(self, a: torch.Tensor) -> torch.Tensor:
        """The activation, in place: the pre-activation is not needed afterwards (`_act_deriv`)."""
        return torch.relu_(a) if self.model.activation == "relu" else torch.tanh_(a)

    def _act_deriv(self, h: torch.Tensor) -> torch.Tensor:
        """f'(a) from h = f(a). ReLU: h > 0 exactly where a > 0, so sign(h) is the 0/1 derivative
        (one fast elementwise op; `(a > 0).to(dtype)` is two slow ones). tanh: 1 - h^2."""
        return torch.sign(h) if self.model.activation == "relu" else 1 - h * h

    def _forward(self, x_t, r, use_eph, z_out=None):
        """One character for every member and sequence. Returns (inputs, eph_inputs, acts, logits).

        With `use_eph`, `eph_inputs[l]` is layer l's input in the form `ell.Layout` takes (`inputs`):
        the ephemeral product and step both use it, so it is prepared once. The logits are written
        into `z_out` when given (a slice of the sequence's logit buffer)."""
        h = torch.cat([x_t, r], dim=1) if self.model.recurrence else x_t  # (P, n_in, B)
        ins, eph_ins, acts = [], [], []
        for l in range(self.L):
            a = torch.baddbmm(self.bias[l].unsqueeze(2), self.S[l], h)  # slow part: (P, n_out, B)
            x = None
            if use_eph:  # + (E * M) h, over the masked entries only
                x = self.layout[l].inputs(h, self.E[l])
                if not self.E_zero:
                    self.layout[l].matvec_add(self.E[l], x, a)
            ins.append(h)
            eph_ins.append(x)
            h = self._act_(a)
            acts.append(h)
        z = torch.baddbmm(self.b_out.unsqueeze(2), self.W_out, h, out=z_out)  # (P, V, B)
        return ins, eph_ins, acts, z

    def _input_grad(self, l, delta, use_eph):
        """W_l^eff^T delta: the slow part dense, the ephemeral part over the masked entries."""
        back = torch.bmm(self.S[l].transpose(1, 2), delta)  # (P, n_in, B)
        if use_eph and not self.E_zero:
            self.layout[l].rmatvec_add(self.E[l], delta, back)
        return back

    def _online_deltas(self, e, acts, use_eph):
        """Error signals delta_l of dfa, dfa_nod and per-step backprop, at the current weights."""
        upd = self.cfg.updater
        if upd in ("dfa", "dfa_nod"):
            deltas = [torch.bmm(self.feedback[l], e) for l in range(self.L)]  # (P, n_l, B)
            if upd == "dfa":
                for l, d in enumerate(deltas):
                    d.mul_(self._act_deriv(acts[l]))
            return deltas
        deltas = [None] * self.L
        back = torch.bmm(self.W_out.transpose(1, 2), e)  # (P, n_L, B)
        for l in reversed(range(self.L)):
            deltas[l] = back.mul_(self._act_deriv(acts[l]))  # `back` is a fresh product: in place
            if l > 0:
                back = self._input_grad(l, deltas[l], use_eph)
        return deltas

    def _bptt_deltas(self, e_t, acts_t, use_eph):
        """BPTT's delta_l(t) = d(sum_t loss_t) / d a_l(t), from the last character back.

        The weights are fixed within the sequence, so this is the usual backward pass per character,
        plus, with recurrence, the gradient reaching r_t = h_L(t) from character t+1 through layer 1's
        recurrent columns."""
        T, V, rec = len(e_t), self.V, self.model.recurrence
        deltas_t = [None] * T
        carry = None  # d loss / d r_t through the next character: (P, n_L, B)
        for t in reversed(range(T)):
            back = torch.bmm(self.W_out.transpose(1, 2), e_t[t])
            if carry is not None:
                back += carry
            deltas = [None] * self.L
            for l in reversed(range(self.L)):
                deltas[l] = back.mul_(self._act_deriv(acts_t[t][l]))  # a fresh product: in place
                if l > 0 or (rec and t > 0):
                    back = self._input_grad(l, deltas[l], use_eph)
            carry = back[:, V:] if rec and t > 0 else None
            deltas_t[t] = deltas
        return deltas_t

    def _reset_eph(self) -> None:
        for E in self.E:
            E.zero_()
        self.E_zero = True

    def _ephemeral_step(self, deltas, eph_ins):
        """E <- clip(gamma * (E - lr * plasticity * delta h^T)) on the masked entries."""
        for l in range(self.L):
            self.layout[l].step(self.E[l], deltas[l], eph_ins[l], self.step_e[l], self.gamma_e[l],
                                self.clip_e[l] if self.clipping else None)
        self.E_zero = False

    def _ephemeral_bptt(self, stacked):
        """The same step once per sequence, with the gradient summed over its characters: one pass
        over E with every character's deltas and inputs side by side (`_stack`)."""
        for l, (D, H) in enumerate(stacked):
            lay, E = self.layout[l], self.E[l]
            lay.step(E, D, lay.inputs(H, E, "chars"), self.step_e[l], self.gamma_e[l],
                     self.clip_e[l] if self.clipping else None, chars=self.T)
        self.E_zero = False

    def _stack(self, deltas_t, ins_t):
        """Per layer (D, H): the characters' deltas (P, n_out, T*B) and inputs (P, n_in, T*B) side by side."""
        return [(self._cat(("D", l), [d[l] for d in deltas_t]), self._cat(("H", l), [x[l] for x in ins_t]))
                for l in range(self.L)]

    def _slow_grads(self, stacked, e_t, hL_t):
        """Sum over the given characters and sequences of every slow parameter's gradient."""
        grads, gb = [], []
        for l, (D, H) in enumerate(stacked):
            G = torch.bmm(D, H.transpose(1, 2))
            if self.ephemeral and not self.sgd_in_place:
                G = G * self.slow_mask[l]  # the in-place SGD step masks through its coefficients
            grads.append(G)
            gb.append(D.sum(2))
        Ecat, Hcat = self._cat(("e",), e_t), self._cat(("hL",), hL_t)
        return grads + gb + [torch.bmm(Ecat, Hcat.transpose(1, 2)), Ecat.sum(2)]

    def _apply_slow(self, grads, scale):
        """theta <- clip(theta - step(scale * grad)) with SGD or torch-style Adam, per member."""
        cfg = self.cfg
        view = lambda t, g: t.view(-1, *([1] * (g.dim() - 1)))  # noqa: E731
        if self.sgd_in_place:
            # In place, one pass per parameter: theta += (-lr * scale [* slow mask]) * grad. Fresh
            # multi-MB results per step cost more (page faults, cache) than the arithmetic.
            if self._sgd_coef is None or self._sgd_coef[0] != scale:
                coef = [-(self.lr * scale)] * len(grads)
                coef = [view(c, g) for c, g in zip(coef, grads)]
                if self.ephemeral:  # the ephemeral positions of the slow matrices stay exactly 0
                    coef[: self.L] = [c * m for c, m in zip(coef[: self.L], self.slow_mask)]
                self._sgd_coef = (scale, coef)
            for p, g, c in zip(self._params(), grads, self._sgd_coef[1]):
                p.addcmul_(g, c)
                if self.clipping:
                    clip = view(self.clip, p)
                    p.clamp_(-clip, clip)
            return
        grads = [g * scale for g in grads]
        if cfg.grad_clip is not None:  # as torch.nn.utils.clip_grad_norm_, per member
            norm = torch.sqrt(sum(g.reshape(g.shape[0], -1).square().sum(1) for g in grads))
            coef = torch.clamp(cfg.grad_clip / (norm + 1e-6), max=1.0)
            grads = [g * view(coef, g) for g in grads]
        params = self._params()
        if cfg.optimizer == "sgd":
            params = [p - view(self.lr, g) * g for p, g in zip(params, grads)]
        else:
            self.adam_step += 1
            b1, b2 = ADAM_BETAS
            bc1, bc2 = 1 - b1**self.adam_step, 1 - b2**self.adam_step
            new = []
            for p, g, m, v in zip(params, grads, self.adam_m, self.adam_v):
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = (v.sqrt() / math.sqrt(bc2)).add_(ADAM_EPS)
                new.append(p - view(self.lr / bc1, g) * (m / denom))
            params = new
        if self.clipping:
            clip = self.clip
            params = [torch.clamp(p, -view(clip, p), view(clip, p)) for p in params]
        if self.ephemeral:  # ephemeral positions of the slow matrices stay exactly 0
            params[: self.L] = [p * m for p, m in zip(params[: self.L], self.slow_mask)]
        self._set_params(params)

    @torch.no_grad()
    def _run_sequence(self, tokens, memory, *, learn, use_eph, want_norms):
        """Run one batch of sequences through the network, updating as the updater says."""
        P, B, T, V = tokens.shape[0], self.B, self.T, self.V
        bptt = self.cfg.updater == "bptt"
        eph = self.ephemeral and use_eph  # the ephemeral entries are in the product and learn
        deltas_needed = learn or eph  # the slow weights learn, or the ephemeral entries do
        # One-hot tokens, feature-major: X[:, t] is the input x_t (P, V, B) and X[:, t + 1] the one-hot target.
        X = F.one_hot(tokens, V).to(self.dtype).permute(0, 2, 3, 1).contiguous()  # (P, T + 1, V, B)
        r = X.new_zeros(P, self.model.width, B)
        # Every character's logits, for the loss and accuracy computed once at the end: (T, P, V, B).
        Z = self._scratch("logits", shape=(T, P, V, B))
        ins_t, deltas_t, e_t, hL_t, acts_t = [], [], [], [], []
        g_eph, g_slow = X.new_zeros(P), X.new_zeros(P)

        for t in range(T):
            ins, eph_ins, acts, z = self._forward(X[:, t], r, eph, z_out=Z[t])
            r = acts[-1]
            if not deltas_needed:
                continue
            e = torch.softmax(z, dim=1).sub_(X[:, t + 1])  # dL/dz: (P, V, B)
            ins_t.append(ins), e_t.append(e), hL_t.append(acts[-1])
            if bptt:  # everything is kept for the backward pass at the end of the sequence
                acts_t.append(acts)
                continue
            deltas = self._online_deltas(e, acts, eph)
            if learn:
                deltas_t.append(deltas)
            if want_norms:
                ge, gs = self._char_norms(deltas, ins, e, acts[-1])
                g_eph, g_slow = g_eph + ge, g_slow + gs
            if eph:
                self._ephemeral_step(deltas, eph_ins)
            if not self.ephemeral and learn:  # RNN: one optimizer step per character
                self._apply_slow(self._slow_grads(self._stack([deltas], [ins]), [e], [acts[-1]]), 1.0 / B)

        stacked = None
        if bptt and deltas_needed:
            deltas_t = self._bptt_deltas(e_t, acts_t, eph)
            if want_norms:
                for args in zip(deltas_t, ins_t, e_t, hL_t):
                    ge, gs = self._char_norms(*args)
                    g_eph, g_slow = g_eph + ge, g_slow + gs
            if eph:  # one ephemeral step at sequence end, summed over characters
                stacked = self._stack(deltas_t, ins_t)
                self._ephemeral_bptt(stacked)
        if learn and (self.ephemeral or bptt):
            self._apply_slow(self._slow_grads(stacked or self._stack(deltas_t, ins_t), e_t, hL_t), 1.0 / B)

        y = tokens[..., 1:].permute(2, 0, 1).unsqueeze(2)  # targets: (T, P, 1, B)
        nll = -torch.log_softmax(Z, dim=2).gather(2, y).squeeze(2)  # (T, P, B)
        correct = Z.argmax(2) == y.squeeze(2)  # (T, P, B)
        mem = memory.permute(2, 0, 1)  # (T, P, B)
        out = {
            "loss": nll.double().sum(dim=(0, 2)) / (B * T),
            "acc": correct.double().mean(dim=(0, 2)),
            "mem_acc": (correct & mem).sum(dim=(0, 2)).double() / mem.sum(dim=(0, 2)).double(),
            "max_logit": Z.abs().amax(dim=(0, 2, 3)),
        }
        if want_norms:
            out["grad_eph"] = torch.sqrt(g_eph / (B * T))
            out["grad_slow"] = torch.sqrt(g_slow / (B * T))
        return out

    def _char_norms(self, deltas, ins, e, hL):
        """Squared raw gradient norms of one character, ephemeral and slow, summed over sequences: (P,).

        The ephemeral part of delta h^T has squared norm sum_i delta_i^2 sum_j M_ij h_j^2 = delta^2 . (M h^2):
        one dense product with the 0/1 mask, never the (N, B) gradient itself."""
        eph = torch.zeros_like(e[:, 0, 0])
        slow = (e.square().sum(1) * (hL.square().sum(1) + 1)).sum(1)
        for l in range(self.L):
            d2 = deltas[l].square()  # (P, n_out, B)
            full = d2.sum(1) * (ins[l].square().sum(1) + 1)  # weights and bias of layer l: (P, B)
            if self.ephemeral:
                ge = (self.layout[l].mask_matvec(ins[l].square()) * d2).sum(1)  # (P, B)
                eph = eph + ge.sum(1)
                full = full - ge
            slow = slow + full.sum(1)
        return eph, slow.clamp(min=0)

    # ------------------------------------------------------------------ public API

    def step(self) -> StepMetrics:
        """Train every running member on its next batch; return that batch's metrics."""
        cfg, i = self.cfg, self.batch_index
        full = i % cfg.metrics_every == 0 or i == cfg.batches - 1
        batch = self.task.sample(self.seeds, i, self.B, stream=TRAIN_STREAM)
        tokens = torch.from_numpy(batch.tokens).to(self.device)
        memory = torch.from_numpy(batch.memory).to(self.device)
        if self.ephemeral and i % cfg.reset_every == 0:
            self._reset_eph()
        out = self._run_sequence(tokens, memory, learn=True, use_eph=True, want_norms=full)
        with torch.no_grad():
            if full:
                ge, gs = out["grad_eph"], out["grad_slow"]
                has_eph = self.n_eph > 0
                nan = torch.full_like(ge, float("nan"))
                out["grad_ratio"] = torch.where(has_eph & (gs > 0), ge / gs, nan)
                rms_e = ge / torch.sqrt(self.n_eph.clamp(min=1).to(ge.dtype))
                rms_s = gs / torch.sqrt(self.n_slow.to(ge.dtype))
                out["grad_rms_ratio"] = torch.where(has_eph & (gs > 0), rms_e / rms_s, nan)
                w_eph = (sum(lay.per_member(E.square()) for lay, E in zip(self.layout, self.E)) if self.E
                         else torch.zeros_like(ge)[:, None])  # (P, B)
                out["w_eph"] = torch.sqrt(w_eph.mean(1))
                out["w_slow"] = torch.sqrt(sum(p.reshape(p.shape[0], -1).square().sum(1) for p in self._params()))
            exploded = self._check_explosion(out["loss"], out["max_logit"])
        n = self.size
        host = {k: v.detach().double().cpu().numpy() for k, v in out.items()}
        nan = np.full(n, np.nan)
        metrics = StepMetrics(
            step=i,
            member=self.member_ids.cpu().numpy(),
            exploded=exploded,
            full=full,
            **{name: host.get(name, nan) for name in METRIC_NAMES},
        )
        self._record_final(i, metrics.member, exploded, full, {name: getattr(metrics, name) for name in METRIC_NAMES})
        self._end_batch(metrics.member[exploded].tolist())
        return metrics

    def evaluate(self, n_batches: int = 10, ephemeral: bool = True) -> dict[str, np.ndarray]:
        """Accuracy on fresh sequences, slow weights frozen; ephemeral dynamics on (or held at 0).

        Returns arrays aligned with `self.alive`. The training state (ephemeral values) is restored.
        """
        saved, saved_zero = [E.clone() for E in self.E], self.E_zero
        self._reset_eph()
        totals = {"loss": 0.0, "acc": 0.0, "mem_acc": 0.0}
        for j in range(n_batches):
            batch = self.task.sample(self.seeds, j, self.B, stream=EVAL_STREAM)
            if j % self.cfg.reset_every == 0:  # evaluation state starts at 0, resets as in training
                self._reset_eph()
            out = self._run_sequence(torch.from_numpy(batch.tokens).to(self.device),
                                     torch.from_numpy(batch.memory).to(self.device),
                                     learn=False, use_eph=ephemeral and self.ephemeral, want_norms=False)
            for k in totals:
                totals[k] = totals[k] + out[k].double().cpu().numpy()
        self.E, self.E_zero = saved, saved_zero
        return {"member": np.asarray(self.alive), **{k: v / n_batches for k, v in totals.items()}}
