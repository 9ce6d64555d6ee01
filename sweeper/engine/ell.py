"""Ephemeral state stored as only its masked entries: a flat list per member (coordinate format).

Why this representation, and why it is exact: an ephemeral entry outside the mask is always 0, so a
sequence's ephemeral matrix is fully described by its values at the masked positions. Member p
lists its masked entries once, `rows[p, j]`, `cols[p, j]`, and every sequence keeps only the values
`E[p, b, j]`. Products gather the inputs at `cols` and add into `rows`, which is the dense masked
product summed in another order. Members with fewer entries than the widest (a smaller ratio) are
padded with entries at row `n_out`, column `n_in`: a row that is cut off and an input that is always
0, so a padded value receives a gradient of exactly 0, stays 0, and changes nothing.

Cost per sequence and character is O(masked entries) instead of O(all entries), and the state per
member-sequence is exactly its masked entries (at ratio 0.1, a tenth of a dense per-sequence copy).
Slow weights stay dense and shared by a member's sequences, so they go through batched matrix products.

Shapes: `rows, cols (P, nnz)`, values `E (P, B, nnz)`, inputs `h (P, B, n_in)`, outputs `(P, B, n_out)`.
"""

from __future__ import annotations

import torch


def build_index(masks: list[torch.Tensor], device) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column of every masked entry of each member, row-major, padded: two (P, nnz) tensors."""
    n_out, n_in = masks[0].shape
    nnz = max(int(m.sum()) for m in masks) if masks else 0
    rows = torch.full((len(masks), nnz), n_out, dtype=torch.long)
    cols = torch.full((len(masks), nnz), n_in, dtype=torch.long)
    for p, m in enumerate(masks):
        r, c = m.nonzero(as_tuple=True)  # row-major order
        rows[p, : len(r)], cols[p, : len(c)] = r, c
    return rows.to(device), cols.to(device)


def _expand(index: torch.Tensor, B: int) -> torch.Tensor:
    P, nnz = index.shape
    return index.unsqueeze(1).expand(P, B, nnz)


def gather_inputs(h: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """The input feeding each masked entry: (P, B, n_in) -> (P, B, nnz)."""
    P, B, _ = h.shape
    h_ext = torch.cat([h, h.new_zeros(P, B, 1)], dim=2)  # coordinate n_in is the padding's 0
    return torch.gather(h_ext, 2, _expand(cols, B))


def gather_rows(delta: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """The output error of each masked entry's row: (P, B, n_out) -> (P, B, nnz)."""
    P, B, _ = delta.shape
    d_ext = torch.cat([delta, delta.new_zeros(P, B, 1)], dim=2)
    return torch.gather(d_ext, 2, _expand(rows, B))


def matvec(E: torch.Tensor, hg: torch.Tensor, rows: torch.Tensor, n_out: int) -> torch.Tensor:
    """(E * M) h for every sequence: (P, B, n_out)."""
    P, B, _ = E.shape
    out = E.new_zeros(P, B, n_out + 1)
    out.scatter_add_(2, _expand(rows, B), E * hg)
    return out[..., :n_out]


def rmatvec(E: torch.Tensor, dg: torch.Tensor, cols: torch.Tensor, n_in: int) -> torch.Tensor:
    """(E * M)^T delta for every sequence, given delta gathered at the rows: (P, B, n_in)."""
    P, B, _ = E.shape
    out = E.new_zeros(P, B, n_in + 1)
    out.scatter_add_(2, _expand(cols, B), E * dg)
    return out[..., :n_in]
