"""Ephemeral state stored as only its masked entries, row by row (ELLPACK layout).

Why this representation, and why it is exact: an ephemeral entry outside the mask is always 0, so
a sequence's ephemeral matrix is fully described by its values at the masked positions. Row i of a
layer keeps its masked column indices `cols[i, :]`, padded to the population's widest row with the
index `n_in`, which points at an extra input coordinate that is always 0. A padded slot therefore
contributes 0 to every product and receives a gradient of exactly 0, so it stays 0 forever: the
padded computation equals the dense masked one term for term, with no approximation.

Cost per sequence and character is O(masked entries) instead of O(all entries): at ratio 0.1 a
tenth of the memory and traffic of a dense per-sequence copy. Slow weights stay dense and shared
by a member's sequences, so they go through batched matrix products.

Shapes: `cols (P, n_out, k)`, values `E (P, B, n_out, k)`, inputs `h (P, B, n_in)`.
"""

from __future__ import annotations

import torch


def build_cols(masks: list[torch.Tensor], device) -> torch.Tensor:
    """Per-row column indices of each member's mask, padded with `n_in`: (P, n_out, k)."""
    n_out, n_in = masks[0].shape
    k = max(int(m.sum(dim=1).max()) for m in masks) if masks else 0
    cols = torch.full((len(masks), n_out, k), n_in, dtype=torch.long)
    for p, m in enumerate(masks):
        counts = m.sum(dim=1)
        # Stable sort puts each row's masked columns first, in increasing order.
        order = torch.argsort((~m).to(torch.int8), dim=1, stable=True)[:, :k]
        slot = torch.arange(k).expand(n_out, k)
        cols[p] = torch.where(slot < counts[:, None], order, torch.full_like(order, n_in))
    return cols.to(device)


def gather_inputs(h: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """The input feeding each masked entry: (P, B, n_in) -> (P, B, n_out, k)."""
    P, B, n_in = h.shape
    _, n_out, k = cols.shape
    h_ext = torch.cat([h, h.new_zeros(P, B, 1)], dim=2)  # coordinate n_in is the padding's 0
    idx = cols.reshape(P, 1, n_out * k).expand(P, B, n_out * k)
    return torch.gather(h_ext, 2, idx).view(P, B, n_out, k)


def matvec(E: torch.Tensor, hg: torch.Tensor) -> torch.Tensor:
    """(E * M) h for every sequence: (P, B, n_out)."""
    return torch.linalg.vecdot(E, hg)


def rmatvec(E: torch.Tensor, delta: torch.Tensor, cols: torch.Tensor, n_in: int) -> torch.Tensor:
    """(E * M)^T delta for every sequence: (P, B, n_in). Used by backprop through ephemeral entries."""
    P, B, n_out, k = E.shape
    contrib = (E * delta.unsqueeze(-1)).reshape(P, B, n_out * k)
    out = E.new_zeros(P, B, n_in + 1)
    out.scatter_add_(2, cols.reshape(P, 1, n_out * k).expand(P, B, n_out * k), contrib)
    return out[..., :n_in]


def grad_sq_norm(delta: torch.Tensor, hg: torch.Tensor) -> torch.Tensor:
    """Squared Frobenius norm of the masked gradient delta h^T, per sequence: (P, B)."""
    return (delta.square() * hg.square().sum(-1)).sum(-1)
