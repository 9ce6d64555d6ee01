"""The reference engine: a plain, paper-style implementation of docs/engine.md for ONE member.

What this is
------------
The test oracle of the fast batched engine (`sweeper/engine/population.py`) and the baseline of
its benchmark. It implements docs/engine.md literally and as plainly as it can, with no attempt at
speed: for each batch, for each sequence `b`, a dense per-sequence copy of every hidden weight
matrix holding that sequence's ephemeral values at the masked positions; for each character an
explicit step. The gradients of the `backprop` and `bptt` updaters come from torch autograd on those
dense copies, so that they check the fast engine's hand-derived formulas independently; DFA
(`dfa`, `dfa_nod`) has no autograd equivalent and is written out. The RNN baseline uses
`torch.optim.SGD` / `torch.optim.Adam` and `torch.nn.utils.clip_grad_norm_`. It always runs on the
CPU, in `run.train.dtype`.

Leave it alone once it is right
-------------------------------
This file is the definition the fast engine is checked against (tests/engine/test_reference.py checks this
file against independently written formulas). Do not optimise it, vectorise it or "tidy" it to look
like the fast engine: an oracle that shares the fast engine's structure shares its bugs. Change it
only when docs/engine.md changes, and then change the page, this file and its tests together.

Choices the contract leaves open, made here:

- `evaluate` keeps its own ephemeral state, starting at 0 and reset by the same rule as training
  (`j % reset_every == 0` for eval batch `j`), so it never disturbs the training state. During
  evaluation the ephemeral entries learn exactly as in training (same updater), the slow weights
  (and all RNN weights) are frozen.
- The recurrent input `r` restarts at 0 at every sequence start, i.e. at every batch, even when the
  ephemeral state is carried over (`reset_every > 1`).
- RNN baseline with `dfa_nod` steps after every character, like `dfa`.
- Metrics: the ephemeral gradient norm and the slow gradient norm of a character are each one norm
  over all layers together. `grad_ratio` and `grad_rms_ratio` are NaN when the member has no
  ephemeral entries or `grad_slow` is 0. For the RNN baseline `grad_eph` and `w_eph` are 0.
"""

from __future__ import annotations

import math

import torch

from ..config import Hyper, RunConfig
from ..tasks.base import EVAL_STREAM, TRAIN_STREAM
from .init import init_member
from .metrics import METRIC_NAMES


class _Tally:
    """Running sums over the characters (b, t) of a batch, from which its metrics are computed."""

    def __init__(self):
        self.n = 0
        self.loss_sum = 0.0
        self.correct = 0
        self.mem_n = 0
        self.mem_correct = 0
        self.eph_sq = 0.0  # sum over (b, t) of the squared norm of the ephemeral part of the gradient
        self.slow_sq = 0.0  # the same for the slow part
        self.max_logit = None  # a 0-d tensor, so that NaN propagates (torch.maximum)

    def add_prediction(self, loss: torch.Tensor, z: torch.Tensor, y: int, is_memory: bool) -> None:
        self.n += 1
        self.loss_sum += float(loss)
        right = int(torch.argmax(z)) == y
        self.correct += right
        if is_memory:
            self.mem_n += 1
            self.mem_correct += right
        m = z.abs().max()
        self.max_logit = m if self.max_logit is None else torch.maximum(self.max_logit, m)

    def add_gradient(self, eph_sq: float, slow_sq: float) -> None:
        self.eph_sq += eph_sq
        self.slow_sq += slow_sq

    def prediction_metrics(self) -> dict[str, float]:
        return {
            "loss": self.loss_sum / self.n,
            "acc": self.correct / self.n,
            "mem_acc": self.mem_correct / self.mem_n if self.mem_n else math.nan,
        }


class Reference:
    """One member trained by the literal reading of docs/engine.md.

    State (dense, read by tests; updated in place, so clone what you want to keep):
    `W[l]` slow hidden weights (n_l, n_{l-1}), zero at ephemeral positions; `b[l]`; `W_out`, `b_out`;
    `E[l]` (B, n_l, n_{l-1}) the current ephemeral values of each sequence (zero off-mask);
    `mask[l]` bool (n_l, n_{l-1}); `feedback[l]` (n_l, V) DFA's matrices; `batch_index`, the next
    training batch.
    """

    def __init__(self, run: RunConfig, hyper: Hyper):
        run.check_hyper(hyper)
        self.run = run
        self.hyper = hyper
        self.task = run.task
        self.kind = run.model.kind
        self.updater = run.train.updater
        self.recurrence = run.model.recurrence
        self.activation = run.model.activation
        self.batch_size = run.train.batch_size
        self.reset_every = run.train.reset_every
        self.dtype = {"float32": torch.float32, "float64": torch.float64}[run.train.dtype]
        self.V = len(self.task.vocab)
        self.T = self.task.seq_len
        self.width = run.model.width
        self.depth = run.model.depth

        init = init_member(run.model, self.V, hyper, dtype=self.dtype)
        self.W = init.W
        self.b = init.b
        self.W_out = init.W_out
        self.b_out = init.b_out
        self.mask = init.mask
        self.feedback = init.feedback
        self.E = [torch.zeros(self.batch_size, *m.shape, dtype=self.dtype) for m in self.mask]
        self.batch_index = 0

        self.n_eph = sum(int(m.sum()) for m in self.mask)
        self.n_slow = (
            sum(int((~m).sum()) for m in self.mask)
            + sum(x.numel() for x in self.b)
            + self.W_out.numel()
            + self.b_out.numel()
        )
        self._onehot = torch.eye(self.V, dtype=self.dtype)

        self.optimizer = None
        if self.kind == "rnn":
            params = self._params()
            if run.train.optimizer == "sgd":
                self.optimizer = torch.optim.SGD(params, lr=hyper.lr)
            else:
                self.optimizer = torch.optim.Adam(params, lr=hyper.lr)

    # ----------------------------------------------------------------------------------------
    # The network

    def _params(self) -> list[torch.Tensor]:
        """Every parameter that is not ephemeral, in a fixed order: W_1..W_L, b_1..b_L, W_o, b_o."""
        return [*self.W, *self.b, self.W_out, self.b_out]

    def _split(self, flat):
        L = self.depth
        return list(flat[:L]), list(flat[L : 2 * L]), flat[2 * L], flat[2 * L + 1]

    def _f(self, a):
        return torch.relu(a) if self.activation == "relu" else torch.tanh(a)

    def _f_prime(self, a):
        if self.activation == "relu":
            return (a > 0).to(a.dtype)
        return 1 - torch.tanh(a) ** 2

    def _input(self, x: int, r: torch.Tensor | None) -> torch.Tensor:
        """`onehot(x_t)`, followed by `r_(t-1)` when recurrence is on."""
        if self.recurrence:
            return torch.cat([self._onehot[x], r])
        return self._onehot[x]

    def _forward(self, Ws, bs, Wo, bo, inp):
        """One character: pre-activations a_l, activations h_0 = input .. h_L, logits z."""
        hs = [inp]
        As = []
        for W, bias in zip(Ws, bs):
            a = W @ hs[-1] + bias
            As.append(a)
            hs.append(self._f(a))
        z = Wo @ hs[-1] + bo
        return As, hs, z

    def _effective(self, E: list[torch.Tensor], bi: int) -> list[torch.Tensor]:
        """W_l^eff = S_l * (1 - M_l) + E_l * M_l for sequence bi (dense copies)."""
        return [torch.where(m, e[bi], w) for w, e, m in zip(self.W, E, self.mask)]

    # ----------------------------------------------------------------------------------------
    # Per-character gradients

    def _char_grads(self, Weff, inp, y):
        """Forward one character and its gradient under a per-character updater.

        Returns (grads, loss, z, h_L), grads as [g_W_1..g_W_L, g_b_1..g_b_L, g_W_o, g_b_o] (dense
        g_W_l: ephemeral and slow entries together).
        """
        if self.updater == "backprop":
            leaves = [p.detach().clone().requires_grad_(True) for p in (*Weff, *self.b, self.W_out, self.b_out)]
            with torch.enable_grad():
                Ws, bs, Wo, bo = self._split(leaves)
                _, hs, z = self._forward(Ws, bs, Wo, bo, inp.detach())  # r_(t-1) is a constant
                loss = -torch.log_softmax(z, dim=0)[y]
                grads = torch.autograd.grad(loss, leaves)
            return list(grads), loss.detach(), z.detach(), hs[-1].detach()
        if self.updater not in ("dfa", "dfa_nod"):
            raise AssertionError(self.updater)
        As, hs, z = self._forward(Weff, self.b, self.W_out, self.b_out, inp)
        loss = -torch.log_softmax(z, dim=0)[y]
        e = torch.softmax(z, dim=0) - self._onehot[y]
        gW, gb = [], []
        for l in range(self.depth):
            delta = self.feedback[l] @ e
            if self.updater == "dfa":
                delta = delta * self._f_prime(As[l])
            gW.append(torch.outer(delta, hs[l]))
            gb.append(delta)
        return [*gW, *gb, torch.outer(e, hs[-1]), e], loss, z, hs[-1]

    def _bptt_sequence(self, Weff, xs, ys):
        """Forward a whole sequence with fixed weights; the per-character gradients g(t) of
        sum_t loss_t, through the recurrence when it is on.

        Every character gets its own leaf copy of every parameter, so that the gradient with respect
        to copy t is exactly g(t) = delta(t) h(t)^T of docs/engine.md (and their sum the total).
        """
        T = len(xs)
        params = (*Weff, *self.b, self.W_out, self.b_out)
        all_leaves, losses, zs = [], [], []
        with torch.enable_grad():
            r = torch.zeros(self.width, dtype=self.dtype)
            for t in range(T):
                leaves = [p.detach().clone().requires_grad_(True) for p in params]
                all_leaves.append(leaves)
                Ws, bs, Wo, bo = self._split(leaves)
                _, hs, z = self._forward(Ws, bs, Wo, bo, self._input(xs[t], r))
                losses.append(-torch.log_softmax(z, dim=0)[ys[t]])
                zs.append(z.detach())
                r = hs[-1]
            total = torch.stack(losses).sum()
            flat = torch.autograd.grad(total, [p for leaves in all_leaves for p in leaves])
        n = len(params)
        grads_t = [list(flat[t * n : (t + 1) * n]) for t in range(T)]
        return grads_t, [x.detach() for x in losses], zs

    def _parts(self, grads):
        """Split one character's dense gradient into its ephemeral part (per hidden layer, zero
        off-mask) and its slow part (every parameter, zero at ephemeral positions)."""
        L = self.depth
        zero = torch.zeros((), dtype=self.dtype)
        eph = [torch.where(m, g, zero) for g, m in zip(grads[:L], self.mask)]
        slow = [torch.where(m, zero, g) for g, m in zip(grads[:L], self.mask)] + list(grads[L:])
        return eph, slow

    @staticmethod
    def _norm_sq(tensors) -> float:
        return sum(float((g**2).sum()) for g in tensors)

    def _ephemeral_step(self, e: torch.Tensor, g_eph: torch.Tensor) -> torch.Tensor:
        """E_l <- clip_c(gamma * (E_l - lr * plasticity * g_W_l * M_l)) for one sequence
        (`g_eph` is already g_W_l * M_l)."""
        h = self.hyper
        return torch.clamp(h.gamma * (e - (h.lr * h.plasticity) * g_eph), -h.clip, h.clip)

    # ----------------------------------------------------------------------------------------
    # One batch, sequence by sequence (ephemeral model; also the RNN's BPTT and frozen evaluation)

    def _sequences(self, tokens, memory, E, tally, *, update_eph: bool, slow_grads: bool):
        """Run every sequence of a batch with its own ephemeral state E[l][b] (updated in place when
        `update_eph`). Slow weights are not touched. Returns sum_b sum_t of the slow gradient when
        `slow_grads`, else None."""
        B = len(tokens)
        gsum = [torch.zeros_like(p) for p in self._params()] if slow_grads else None
        for bi in range(B):
            xs, ys, mem = tokens[bi][:-1], tokens[bi][1:], memory[bi]
            if not (update_eph or slow_grads):
                # Frozen: forward only.
                Weff = self._effective(E, bi)
                r = torch.zeros(self.width, dtype=self.dtype)
                for t in range(len(xs)):
                    _, hs, z = self._forward(Weff, self.b, self.W_out, self.b_out, self._input(xs[t], r))
                    tally.add_prediction(-torch.log_softmax(z, dim=0)[ys[t]], z, ys[t], mem[t])
                    r = hs[-1]
                continue
            if self.updater == "bptt":
                Weff = self._effective(E, bi)  # fixed for the whole sequence
                grads_t, losses, zs = self._bptt_sequence(Weff, xs, ys)
                G_eph = [torch.zeros_like(e[bi]) for e in E]
                for t, grads in enumerate(grads_t):
                    eph, slow = self._parts(grads)
                    tally.add_prediction(losses[t], zs[t], ys[t], mem[t])
                    tally.add_gradient(self._norm_sq(eph), self._norm_sq(slow))
                    for acc, g in zip(G_eph, eph):
                        acc += g
                    if slow_grads:
                        for acc, g in zip(gsum, slow):
                            acc += g
                if update_eph:  # once, at the end of the sequence, with sum_t g_W_l(t) * M_l
                    for l in range(self.depth):
                        E[l][bi] = self._ephemeral_step(E[l][bi], G_eph[l])
            else:
                r = torch.zeros(self.width, dtype=self.dtype)
                for t in range(len(xs)):
                    Weff = self._effective(E, bi)
                    grads, loss, z, h_L = self._char_grads(Weff, self._input(xs[t], r), ys[t])
                    eph, slow = self._parts(grads)
                    tally.add_prediction(loss, z, ys[t], mem[t])
                    tally.add_gradient(self._norm_sq(eph), self._norm_sq(slow))
                    if slow_grads:
                        for acc, g in zip(gsum, slow):
                            acc += g
                    if update_eph:  # after every character, with this character's g_W_l * M_l
                        for l in range(self.depth):
                            E[l][bi] = self._ephemeral_step(E[l][bi], eph[l])
                    r = h_L
        return gsum

    # ----------------------------------------------------------------------------------------
    # RNN baseline

    def _rnn_step(self, grads) -> None:
        """One optimizer step with the given (batch-mean) gradient, then weight clipping."""
        params = self._params()
        for p, g in zip(params, grads):
            p.grad = g.clone()
        if self.run.train.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, self.run.train.grad_clip)
        self.optimizer.step()
        with torch.no_grad():
            for p in params:
                p.clamp_(-self.hyper.clip, self.hyper.clip)
                p.grad = None

    def _rnn_per_character(self, tokens, memory, tally) -> None:
        """dfa / dfa_nod / backprop: one optimizer step after every character with (1/B) sum_b g(b, t)."""
        B = len(tokens)
        r = [torch.zeros(self.width, dtype=self.dtype) for _ in range(B)]
        for t in range(self.T):
            gsum = [torch.zeros_like(p) for p in self._params()]
            for bi in range(B):
                x, y = tokens[bi][t], tokens[bi][t + 1]
                grads, loss, z, h_L = self._char_grads(list(self.W), self._input(x, r[bi]), y)
                tally.add_prediction(loss, z, y, memory[bi][t])
                tally.add_gradient(0.0, self._norm_sq(grads))  # no ephemeral entries
                for acc, g in zip(gsum, grads):
                    acc += g
                r[bi] = h_L
            self._rnn_step([g / B for g in gsum])

    # ----------------------------------------------------------------------------------------
    # Public API

    def _sample(self, batch_index: int, stream: int):
        batch = self.task.sample([self.hyper.seed], batch_index, self.batch_size, stream)
        return batch.tokens[0].tolist(), batch.memory[0].tolist()

    def train_batch(self) -> dict[str, float]:
        """Train on the next batch (batch_index 0, 1, 2, ...) and return its metrics (docs/engine.md)."""
        i = self.batch_index
        tokens, memory = self._sample(i, TRAIN_STREAM)
        B = len(tokens)
        tally = _Tally()
        h = self.hyper
        with torch.no_grad():
            if self.kind == "ephemeral":
                if i % self.reset_every == 0:
                    for e in self.E:
                        e.zero_()
                gsum = self._sequences(tokens, memory, self.E, tally, update_eph=True, slow_grads=True)
                # Slow weights, fixed during the batch: theta <- clip_c(theta - lr * (1/B) sum_b sum_t g).
                for p, g in zip(self._params(), gsum):
                    p.copy_(torch.clamp(p - h.lr * (g / B), -h.clip, h.clip))
            elif self.updater == "bptt":
                gsum = self._sequences(tokens, memory, self.E, tally, update_eph=False, slow_grads=True)
                self._rnn_step([g / B for g in gsum])
            else:
                self._rnn_per_character(tokens, memory, tally)
        self.batch_index += 1
        return self._metrics(tally)

    def _metrics(self, tally: _Tally) -> dict[str, float]:
        out = tally.prediction_metrics()
        grad_eph = math.sqrt(tally.eph_sq / tally.n)
        grad_slow = math.sqrt(tally.slow_sq / tally.n)
        if self.n_eph == 0 or grad_slow == 0:
            grad_ratio = grad_rms_ratio = math.nan
        else:
            grad_ratio = grad_eph / grad_slow
            grad_rms_ratio = (grad_eph / math.sqrt(self.n_eph)) / (grad_slow / math.sqrt(self.n_slow))
        B = self.E[0].shape[0]
        w_eph_sq = [sum(float((e[bi] ** 2).sum()) for e in self.E) for bi in range(B)]
        w_eph = math.sqrt(sum(w_eph_sq) / B)
        w_slow = math.sqrt(sum(float((p**2).sum()) for p in self._params()))
        out.update(
            grad_eph=grad_eph,
            grad_slow=grad_slow,
            grad_ratio=grad_ratio,
            grad_rms_ratio=grad_rms_ratio,
            w_eph=w_eph,
            w_slow=w_slow,
            max_logit=float(tally.max_logit),
        )
        return {k: out[k] for k in METRIC_NAMES}

    def evaluate(self, n_batches: int, ephemeral: bool = True) -> dict[str, float]:
        """Fresh sequences of EVAL_STREAM (batch indices 0 .. n_batches-1), slow weights frozen.

        With `ephemeral` the ephemeral entries learn exactly as in training (own state, starting at
        0, reset when `j % reset_every == 0`); without, they are held at 0. The training state is
        left untouched. Returns loss, acc and mem_acc over all evaluated characters.
        """
        if n_batches < 1:
            raise ValueError(f"n_batches: got {n_batches}; expected at least 1")
        tally = _Tally()
        E = [torch.zeros_like(e) for e in self.E]
        learn = ephemeral and self.kind == "ephemeral"
        with torch.no_grad():
            for j in range(n_batches):
                tokens, memory = self._sample(j, EVAL_STREAM)
                if j % self.reset_every == 0:
                    for e in E:
                        e.zero_()
                self._sequences(tokens, memory, E, tally, update_eph=learn, slow_grads=False)
        return tally.prediction_metrics()


def explosion(losses, max_logits, train) -> tuple[int | None, int | None]:
    """The explosion rule of docs/engine.md, read off a member's whole per-batch history: (detection,
    onset), or (None, None) when it never fires. `losses`, `max_logits`: one float per batch, from
    batch 0; `train`: the TrainConfig (explode_threshold, explode_window, explode_grace, explode_margin).
    Written from the page as plain loops over batches, not as the engines' running state."""
    w, threshold, margin = train.explode_window, train.explode_threshold, train.explode_margin
    means = []  # windowed mean loss of each batch so far
    for i, (loss, logit) in enumerate(zip(losses, max_logits)):
        recent = [float(x) for x in losses[max(0, i - w + 1): i + 1]]
        means.append(sum(recent) / len(recent))
        best = min((m for m in means if not math.isnan(m)), default=math.inf)  # the lowest, NaN windows aside
        broken = not math.isfinite(loss) or not math.isfinite(logit)
        rose = i >= train.explode_grace and means[i] > threshold and means[i] > best + margin
        if broken or rose:
            return i, _onset(losses, max_logits, means, i, train)
    return None, None


def _onset(losses, max_logits, means, detection: int, train) -> int:
    """The first batch of the latest run of consecutive batches above their excursion level, at or before
    `detection`, if that run reaches into the confirming window; else `detection`."""
    def above(j):
        if not (math.isfinite(losses[j]) and math.isfinite(max_logits[j])):
            return True
        earlier = [m for m in means[:j] if not math.isnan(m)]
        level = max(train.explode_threshold, min(earlier) + train.explode_margin) if earlier else \
            train.explode_threshold
        return losses[j] > level

    last = detection
    while last >= 0 and not above(last):
        last -= 1
    if last < 0 or last <= detection - train.explode_window:
        return detection
    first = last
    while first > 0 and above(first - 1):
        first -= 1
    return first


__all__ = ["Reference", "explosion"]
