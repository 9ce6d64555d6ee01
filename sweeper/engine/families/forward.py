"""Batched forward passes of the fast-weight families: P members x B sequences at once.

Implements the per-sequence recurrences of docs/families.md for a whole population in one tensor
program; `population.py` differentiates them with autograd (BPTT) and steps the slow weights.
Shape convention, used everywhere below (batch-major, features last):

    (P, ...)            per member: slow weights (P, n_out, n_in), hyperparameters (P,)
    (P, B, T, n)        per member, sequence and character: inputs, activations, logits
    (P, B, n, m)        per member and sequence: a fast matrix (A for fastweights, W for fwp)
    (P, B, T, T)        per member and sequence, character pairs (t, i): the 'attention' form's scores
                        (fwp: (P, B, C, C) within a chunk of C characters)

Members never mix: every product is batched over P (or over P * B), so member p's numbers depend
only on its own weights, hyperparameters and tokens. The numbers are the contract's; they differ
from `reference.py` only in rounding (the order of sums and products):

- a matrix times `onehot(x_t)` is a gather of the matrix's column `x_t`, done for all characters
  at once before the recurrence;
- two forms read the fast state (`FORMS`). 'matrix' steps it through the characters as the
  reference does: fastweights reads `A_(t-1) h^(s)` before the write of `A_t`; fwp writes `W_t`
  before the read `W_t phi(q_t)`, and the gated rule decays the old state before the delta rule
  reads it. 'attention' does not step the fast matrix: it is a decayed sum of the outer products
  written so far, so a read is a weighted sum over the past characters (the delta rules' written
  values come from a triangular solve, which is their recurrence reordered). fastweights reads all
  of the past this way (O(T^2) per sequence instead of O(T H^2)); fwp takes the characters in
  chunks and forms W only between chunks (`_fwp_chunk`). Neither keeps a matrix per character for
  the backward pass;
- fastweights: at t = 0 the state is exactly 0, so `W h_(-1)` and `A_(-1) h` are skipped;
- fwp: a layer's projections, feature maps, `eta_t` and `lambda_t` depend only on its input, which
  (through the residual stream) depends on earlier layers only; so layers run one after the other,
  each over the whole sequence, and only the fast state's recurrence steps through the characters.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .config import FastWeightsModel, FWPModel
from .reference import L2_EPS, LN_EPS

FORMS = ("auto", "matrix", "attention")
"""How a fast state is read: by stepping the fast matrix ('matrix') or as attention over the past
characters without forming it ('attention'); 'auto' picks the cheaper for the sizes."""


def resolve_form(model: FastWeightsModel | FWPModel, T: int, form: str = "auto") -> str:
    """'matrix' or 'attention' for sequences of T characters. 'auto' takes 'attention' for fwp (chunked,
    its work grows linearly with T) and, for fastweights, while its O(T^2) work per sequence is the
    smaller: T <= 2 H (on one CPU thread at T = 63, B = 32: equal speed at H = 32, twice as fast at
    H = 64)."""
    if form not in FORMS:
        raise ValueError(f"form: got {form!r}; expected one of {FORMS}")
    if form != "auto":
        return form
    if isinstance(model, FastWeightsModel):
        return "attention" if T <= 2 * model.hidden else "matrix"
    return "attention"


class BatchForward(NamedTuple):
    """One batch's forward pass for every member and sequence."""

    logits: torch.Tensor
    """(P, B, T, V): z_t (attached to the graph when the parameters require grad)."""
    fast_sq: torch.Tensor
    """(P, B) float64, detached: squared Frobenius norm of the fast state after the last character
    (all layers together)."""
    transition: torch.Tensor | None
    """(P,) detached: the largest eta_t ||phi(k_t)||^2 over sequences, characters and layers (delta
    rules); None for the models without one."""


def columns(M: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """M onehot(x) for every member, sequence and character: column x[p, b, t] of M[p].

    M (P, n, V), x (P, B, T) int64 -> (P, B, T, n). Its gradient scatters back into those columns."""
    P, B, T = x.shape
    n = M.shape[1]
    idx = x.reshape(P, B * T, 1).expand(P, B * T, n)  # (P, B*T, n)
    return torch.gather(M.transpose(1, 2), 1, idx).view(P, B, T, n)


def linear(X: torch.Tensor, M: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """X M^T (+ bias) per member: X (P, B, T, n_in), M (P, n_out, n_in), bias (P, n_out) -> (P, B, T, n_out)."""
    P, B, T, n_in = X.shape
    flat = X.reshape(P, B * T, n_in)
    if bias is None:
        out = torch.bmm(flat, M.transpose(1, 2))
    else:
        out = torch.baddbmm(bias.unsqueeze(1), flat, M.transpose(1, 2))
    return out.view(P, B, T, M.shape[1])


def matvec(M: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """M v per member and sequence: M (P, B, n, m), v (P, B, m) -> (P, B, n)."""
    return torch.matmul(M, v.unsqueeze(-1)).squeeze(-1)


# ------------------------------------------------------------------------------------------------
# fastweights (Ba et al. 2016)


def _layer_norm(a: torch.Tensor, gain: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """LN over the last axis with the biased variance: a (P, B, H), gain and bias (P, H)."""
    mean = a.mean(-1, keepdim=True)  # (P, B, 1)
    centred = a - mean
    var = centred.square().mean(-1, keepdim=True)  # (P, B, 1)
    return gain.unsqueeze(1) * centred / torch.sqrt(var + LN_EPS) + bias.unsqueeze(1)


def fastweights_forward(model: FastWeightsModel, p: dict[str, torch.Tensor], eta: torch.Tensor,
                        lam: torch.Tensor, x: torch.Tensor, form: str = "auto") -> BatchForward:
    """The fast-weight RNN on inputs x (P, B, T) from h = 0, A = 0 in every sequence.

    p: stacked slow weights {name: (P, ...)}; eta, lam: (P,) per-member hyperparameters.

    `form` is how the read `A_(t-1) h` is computed; both are the contract's sum, in another order:
    'matrix' keeps A_t (P, B, H, H) and writes it every character, as the reference does;
    'attention' never forms A and reads it as attention to the past hidden states,
    `A_(t-1) h = sum_(tau < t) eta lambda^(t-1-tau) h_tau (h_tau . h)`, which costs O(t H) per read
    instead of O(H^2) (and keeps no (H, H) matrix per character for the backward pass). 'auto':
    `resolve_form`."""
    P, B, T = x.shape
    form = resolve_form(model, T, form)
    f = torch.relu if model.activation == "relu" else torch.tanh
    Cx = columns(p["C"], x)  # (P, B, T, H): C onehot(x_t)
    W_T = p["W"].transpose(1, 2)  # (P, H, H)
    # eta lambda^k, k = 0 .. T-1: the weight of h_(t-1-k) h_(t-1-k)^T in A_(t-1)
    decay = eta.unsqueeze(1) * lam.unsqueeze(1) ** torch.arange(T, dtype=lam.dtype, device=lam.device)  # (P, T)
    eta_v, lam_v = eta.view(P, 1, 1), lam.view(P, 1, 1, 1)
    h = A = None  # h_(t-1): (P, B, H); A_(t-1): (P, B, H, H); both exactly 0 before t = 0
    hs_t = []
    for t in range(T):
        pre = Cx[:, :, t] if t == 0 else torch.baddbmm(Cx[:, :, t], h, W_T)  # (P, B, H): W h + C x
        if t > 0 and form == "attention":
            past = torch.stack(hs_t, dim=2)  # (P, B, t, H): h_0 .. h_(t-1)
            w = decay[:, :t].flip(1).unsqueeze(1)  # (P, 1, t): eta lambda^(t-1-tau)
        hs = f(pre)  # h^(0): no layer norm
        for _ in range(model.inner_steps):
            if t == 0:
                a = pre
            elif form == "attention":
                score = matvec(past, hs) * w  # (P, B, t): eta lambda^(t-1-tau) (h_tau . h)
                a = pre + torch.matmul(score.unsqueeze(-2), past).squeeze(-2)  # (P, B, H)
            else:
                a = pre + matvec(A, hs)  # (P, B, H)
            if model.layer_norm:
                a = _layer_norm(a, p["ln_gain"], p["ln_bias"])
            hs = f(a)
        h = hs
        if form == "matrix":
            write = (eta_v * h).unsqueeze(-1)  # (P, B, H, 1): eta h
            A = write * h.unsqueeze(-2) if A is None else torch.addcmul(lam_v * A, write, h.unsqueeze(-2))
        hs_t.append(h)
    Hs = torch.stack(hs_t, dim=2)  # (P, B, T, H)
    logits = linear(Hs, p["W_out"], p["b_out"])  # (P, B, T, V)
    with torch.no_grad():
        if form == "matrix":
            fast_sq = A.double().square().sum((-2, -1))  # (P, B)
        else:  # ||A_(T-1)||_F^2 = sum_(tau, sigma) w_tau w_sigma (h_tau . h_sigma)^2, w_tau = eta lambda^(T-1-tau)
            Hd = Hs.detach().double()
            gram = torch.matmul(Hd, Hd.transpose(-1, -2))  # (P, B, T, T)
            wd = decay.detach().double().flip(1)  # (P, T)
            fast_sq = torch.einsum("pt,pbts,ps->pb", wd, gram.square(), wd)  # (P, B)
    return BatchForward(logits, fast_sq, None)


# ------------------------------------------------------------------------------------------------
# fwp (fast weight programmers)


def _phi(kind: str, a: torch.Tensor) -> torch.Tensor:
    """The feature map over the last axis."""
    if kind == "identity":
        return a
    if kind == "elu1":
        return F.elu(a) + 1
    s = F.silu(a)  # silu_l2
    return s / torch.clamp(torch.linalg.vector_norm(s, dim=-1, keepdim=True), min=L2_EPS)


def _fwp_matrix(phi_q, phi_k, v, eta_t, lam_t):
    """One layer's fast-matrix recurrence, character by character. phi_q, phi_k (P, B, T, K),
    v (P, B, T, Dv), eta_t (P, B, T) or None (hebb), lam_t (P, B, T), (P, 1, 1) or None (no decay).
    Returns o (P, B, T, Dv) and the last W (P, B, Dv, K)."""
    T = phi_q.shape[2]
    W = None  # W_(t-1): (P, B, Dv, K), exactly 0 before t = 0
    outs = []
    for t in range(T):
        k_t, v_t = phi_k[:, :, t], v[:, :, t]  # (P, B, K), (P, B, Dv)
        if lam_t is not None and W is not None:
            lam_s = lam_t[:, :, t] if lam_t.shape[2] == T else lam_t[:, :, 0]  # (P, B) or (P, 1)
            W = lam_s.unsqueeze(-1).unsqueeze(-1) * W  # the decay first (gated rule: before the read)
        if eta_t is not None:
            r = v_t if W is None else v_t - matvec(W, k_t)  # (P, B, Dv): v - W_(t-1) phi(k)
            r = eta_t[:, :, t].unsqueeze(-1) * r
        else:
            r = v_t
        W = r.unsqueeze(-1) * k_t.unsqueeze(-2) if W is None else torch.addcmul(W, r.unsqueeze(-1), k_t.unsqueeze(-2))
        outs.append(matvec(W, phi_q[:, :, t]))  # (P, B, Dv): W_t phi(q_t), after the write
    return torch.stack(outs, dim=2), W


FWP_CHUNK = 32
"""fwp's 'attention' form takes the characters in chunks of at most this many (`_fwp_chunk`). On one
CPU thread, B = 32, it runs 2.5x (T = 63) to 5x (T = 243) faster than the 'matrix' form for d_key =
d_value = 16 or 32, with chunks of 16, 32 or 64 within 20% of each other."""


def _fwp_chunk(phi_q, phi_k, v, eta_t, decay, S):
    """One layer over a chunk of C characters without stepping W through them. phi_q, phi_k
    (P, B, C, K), v (P, B, C, Dv), eta_t (P, B, C) or None (hebb); S (P, B, Dv, K): W before the
    chunk, or None where it is exactly 0 (the first chunk). decay: None (no decay),
    ('constant', lambda (P,)) or ('learned', log lambda_t (P, B, C)).

    Within the chunk (t, i counted from its start) every W_t is S, decayed, plus a decayed sum of the
    outer products written since:

        W_t = g_t S + sum_(i <= t) G[t, i] u_i phi(k_i)^T,   G[t, i] = lambda_(i+1) ... lambda_t (1 at i = t),
                                                            g_t = lambda_0 ... lambda_t,

    with u_i = v_i for hebb and, for the delta rules, u_i = eta_i (v_i - lambda_i W_(i-1) phi(k_i)),
    i.e. u_i + eta_i sum_(j < i) G[i, j] (phi(k_j) . phi(k_i)) u_j = eta_i (v_i - g_i S phi(k_i)): a unit
    lower-triangular system over the characters, solved by forward substitution (the recurrence
    itself, reordered). Then o_t = W_t phi(q_t) = g_t S phi(q_t) + sum_(i <= t) G[t, i] (phi(k_i) . phi(q_t)) u_i.
    Returns o (P, B, C, Dv) and W at the chunk's last character (P, B, Dv, K)."""
    P, B, C, _ = phi_q.shape
    idx = torch.arange(C, device=phi_q.device)
    lower = idx.unsqueeze(1) >= idx.unsqueeze(0)  # (C, C): i <= t
    strict = idx.unsqueeze(1) > idx.unsqueeze(0)  # (C, C): i < t
    if decay is None:
        G = g = None
    elif decay[0] == "constant":
        lam = decay[1].view(P, 1, 1)  # (P, 1, 1)
        gap = (idx.unsqueeze(1) - idx.unsqueeze(0)).clamp(min=0).to(phi_q.dtype)  # (C, C): t - i
        G = torch.where(lower, lam.unsqueeze(-1) ** gap, 0.0)  # (P, 1, C, C)
        g = lam ** (idx + 1).to(phi_q.dtype)  # (P, 1, C)
    else:  # log G[t, i] = sum_(i < m <= t) log lambda_m, summed along t from each i (no differences of
        # running sums, which would lose precision as they grow)
        steps = torch.where(strict, decay[1].unsqueeze(-1), 0.0)  # (P, B, C, C): log lambda_m for m > i
        G = torch.exp(torch.where(lower, torch.cumsum(steps, dim=-2), -math.inf))  # (P, B, C, C)
        g = torch.exp(torch.cumsum(decay[1], dim=-1))  # (P, B, C)
    if S is not None:
        S_T = S.transpose(-1, -2)  # (P, B, K, Dv)
        S_k, S_q = torch.matmul(phi_k, S_T), torch.matmul(phi_q, S_T)  # (P, B, C, Dv): S phi(k_t), S phi(q_t)
        if g is not None:
            S_k, S_q = g.unsqueeze(-1) * S_k, g.unsqueeze(-1) * S_q
    if eta_t is None:
        U = v  # (P, B, C, Dv)
    else:
        kk = torch.matmul(phi_k, phi_k.transpose(-1, -2))  # (P, B, C, C): phi(k_i) . phi(k_j)
        A = torch.where(strict, eta_t.unsqueeze(-1) * (kk if G is None else G * kk), 0.0)  # unit diagonal implied
        rhs = eta_t.unsqueeze(-1) * (v if S is None else v - S_k)  # (P, B, C, Dv)
        U = torch.linalg.solve_triangular(A, rhs, upper=False, unitriangular=True)  # (P, B, C, Dv)
    scores = torch.matmul(phi_q, phi_k.transpose(-1, -2))  # (P, B, C, C): phi(q_t) . phi(k_i)
    scores = torch.where(lower, scores if G is None else G * scores, 0.0)
    o = torch.matmul(scores, U)  # (P, B, C, Dv)
    last = U if G is None else G[..., C - 1, :].unsqueeze(-1) * U  # (P, B, C, Dv): G[C-1, i] u_i
    W = torch.matmul(last.transpose(-1, -2), phi_k)  # (P, B, Dv, K)
    if S is not None:
        o = o + S_q
        W = W + (S if g is None else g[..., C - 1].unsqueeze(-1).unsqueeze(-1) * S)
    return o, W


def _fwp_chunked(phi_q, phi_k, v, eta_t, decay, chunk: int):
    """One layer in chunks of at most `chunk` characters (`_fwp_chunk`), W carried between them.
    Shapes as `_fwp_chunk` with T characters; returns o (P, B, T, Dv) and the last W (P, B, Dv, K)."""
    T = phi_q.shape[2]
    outs, W = [], None
    for c0 in range(0, T, chunk):
        part = slice(c0, min(T, c0 + chunk))
        d = decay if decay is None or decay[0] == "constant" else (decay[0], decay[1][:, :, part])
        o, W = _fwp_chunk(phi_q[:, :, part], phi_k[:, :, part], v[:, :, part],
                          None if eta_t is None else eta_t[:, :, part], d, W)
        outs.append(o)
    return torch.cat(outs, dim=2), W


def fwp_forward(model: FWPModel, p: dict[str, torch.Tensor], beta_scale: torch.Tensor, lam: torch.Tensor,
                x: torch.Tensor, form: str = "auto", chunk: int = FWP_CHUNK) -> BatchForward:
    """The fast weight programmer on inputs x (P, B, T) from W = 0 in every layer and sequence.

    p: stacked slow weights {name: (P, ...)}; beta_scale, lam: (P,) per-member hyperparameters.
    `form`: 'matrix' steps each layer's fast matrix W_t (P, B, d_v, d_k) through the characters, as
    the reference does; 'attention' takes the characters in chunks of at most `chunk` and forms W only
    between chunks (`_fwp_chunk`: chunk x chunk products and, for the delta rules, a triangular solve);
    'auto': `resolve_form`."""
    P, B, T = x.shape
    K, Dv = model.d_key, model.d_value
    form = resolve_form(model, T, form)
    delta = model.rule != "hebb"
    U = columns(p["E"], x)  # (P, B, T, D): u^(1) = E onehot(x_t)
    fast_sq = torch.zeros(P, B, dtype=torch.float64, device=x.device)
    transition = None
    for l in range(model.layers):
        pre = f"layers.{l}."
        rows = [p[pre + "W_Q"], p[pre + "W_K"], p[pre + "W_V"]]  # (P, K | K | Dv, D)
        if delta:
            rows.append(p[pre + "w_b"].unsqueeze(1))  # (P, 1, D)
        if model.decay == "learned":
            rows.append(p[pre + "w_l"].unsqueeze(1))  # (P, 1, D)
        proj = linear(U, torch.cat(rows, dim=1))  # (P, B, T, 2K + Dv [+ 1] [+ 1]): one product
        q, k, v = proj[..., :K], proj[..., K:2 * K], proj[..., 2 * K:2 * K + Dv]
        phi_q, phi_k = _phi(model.phi, q), _phi(model.phi, k)  # (P, B, T, K)
        eta_t = None  # (P, B, T), delta rules only
        if delta:
            beta = proj[..., 2 * K + Dv]  # (P, B, T)
            psi = torch.sigmoid(beta) if model.psi == "sigmoid" else 2 * torch.sigmoid(beta)
            eta_t = beta_scale.view(P, 1, 1) * psi  # (P, B, T)
            x_t = (eta_t * phi_k.square().sum(-1)).detach().flatten(1).amax(1)  # (P,)
            transition = x_t if transition is None else torch.maximum(transition, x_t)
        if model.decay == "learned":
            z = proj[..., -1] + p[pre + "b_l"].view(P, 1, 1)  # (P, B, T): lambda_t = sigmoid(z)
        if form == "matrix":
            lam_t = {"none": None, "constant": lam.view(P, 1, 1)}.get(model.decay)
            if model.decay == "learned":
                lam_t = torch.sigmoid(z)
            O, W = _fwp_matrix(phi_q, phi_k, v, eta_t, lam_t)  # (P, B, T, Dv), (P, B, Dv, K)
        else:
            decay = {"none": None, "constant": ("constant", lam)}.get(model.decay)
            if model.decay == "learned":
                decay = ("learned", F.logsigmoid(z))
            O, W = _fwp_chunked(phi_q, phi_k, v, eta_t, decay, chunk)  # (P, B, T, Dv), (P, B, Dv, K)
        fast_sq = fast_sq + W.detach().double().square().sum((-2, -1))
        U = U + linear(O, p[pre + "W_O"])  # (P, B, T, D): the residual stream
    logits = linear(U, p["W_out"], p["b_out"])  # (P, B, T, V)
    return BatchForward(logits, fast_sq, transition)


__all__ = ["BatchForward", "FORMS", "FWP_CHUNK", "resolve_form", "columns", "linear", "matvec", "fastweights_forward",
           "fwp_forward"]
