"""Ephemeral state stored as only its masked entries, entries-major with the sequences innermost.

What is stored. An ephemeral entry outside the mask is always 0, so a sequence's ephemeral matrix is
fully described by its values at the masked positions. For one hidden layer, the masked entries of
all members are listed once, member after member and row-major within a member (so the entries of
one row of one member are contiguous), with no padding: `N = sum_p nnz_p` entries. The values are
one tensor `E (N, B)`: entry j of every sequence b of its member. The state per member-sequence is
exactly its masked entries.

Why this layout is fast (and exact). Activations are kept feature-major, `h (P, n, B)`, seen flat as
`(P * n, B)`: row `p * n + i` is feature i of member p for all B sequences. Every sparse operation
then moves whole rows of B contiguous numbers, and each is a plain copy or a plain sum:

- `gather(h)`: the input feeding each entry, `h[col_j]`, one row copy per entry (index_select).
- `expand_rows(d)`: the output error of each entry's row, `d[row_j]`. The entries are row-sorted,
  so this is `d` with row i repeated `count_i` times (repeat_interleave): a copy.
- `sum_rows(X)`: `sum over the entries j of row i of X_j`, i.e. `(E * M) h` when `X = E * gather(h)`.
  A 0/1 sparse CSR matrix `R (P*n_out, N)` times `X`; each product is `1.0 * x = x` exactly, so the
  result is the sum of exactly the masked terms (in another order than a dense product, the only
  difference: rounding).
- `sum_cols(X)`: the same by column, `(E * M)^T d` when `X = E * expand_rows(d)`: `C (P*n_in, N)`.

The dense alternative (scatter_add_ into the last axis of a `(P, B, n)` tensor) moved single numbers
with per-element index arithmetic and was ~20x slower than the CSR product for the same sum.
"""

from __future__ import annotations

import warnings

import torch


def _csr(crow: torch.Tensor, col: torch.Tensor, n_rows: int, n_cols: int, dtype) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta": CSR @ dense is all we use
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, torch.ones(len(col), dtype=dtype, device=col.device),
                                       size=(n_rows, n_cols), check_invariants=True)


def _offsets(counts: torch.Tensor) -> torch.Tensor:
    crow = counts.new_zeros(len(counts) + 1)
    torch.cumsum(counts, 0, out=crow[1:])
    return crow


class Layout:
    """The masked entries of one hidden layer of every member, and the sparse operations on them."""

    def __init__(self, masks: torch.Tensor, dtype):
        """masks: (P, n_out, n_in) bool, one mask per member (on the engine's device)."""
        P, n_out, n_in = masks.shape
        self.P, self.n_out, self.n_in = P, n_out, n_in
        member, row, col = masks.nonzero(as_tuple=True)  # member-major, row-major within a member
        self.N = len(member)
        self.counts = masks.flatten(1).sum(1)  # (P,) entries per member
        self.cols = member * n_in + col  # (N,) row of the flat input (P * n_in, B) feeding entry j
        self.rows = member * n_out + row  # (N,) row of the flat output (P * n_out, B); non-decreasing
        self.row_counts = torch.bincount(self.rows, minlength=P * n_out)  # (P * n_out,)
        entries = torch.arange(self.N, device=masks.device)
        self.R = _csr(_offsets(self.row_counts), entries, P * n_out, self.N, dtype)
        self.member_sum = _csr(_offsets(self.counts), entries, P, self.N, dtype)
        by_col = torch.argsort(self.cols, stable=True)
        col_counts = torch.bincount(self.cols, minlength=P * n_in)
        self.C = _csr(_offsets(col_counts), by_col, P * n_in, self.N, dtype)

    def per_entry(self, values: torch.Tensor) -> torch.Tensor:
        """A per-member value (P,) for every entry: (N, 1), to scale E (N, B) member by member."""
        return values.repeat_interleave(self.counts, output_size=self.N).unsqueeze(1)

    def per_member(self, X: torch.Tensor) -> torch.Tensor:
        """Sum over each member's entries: (N, B) -> (P, B)."""
        return self.member_sum @ X

    def gather(self, h: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The input feeding each entry: (P, n_in, B) -> (N, B)."""
        return torch.index_select(h.reshape(self.P * self.n_in, -1), 0, self.cols, out=out)

    def expand_rows(self, d: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The output error of each entry's row: (P, n_out, B) -> (N, B). The entries are row-sorted,
        so this is d with row i repeated count_i times (a copy)."""
        return torch.index_select(d.reshape(self.P * self.n_out, -1), 0, self.rows, out=out)

    def sum_rows(self, X: torch.Tensor) -> torch.Tensor:
        """Sum of the entries of each row: (N, B) -> (P, n_out, B). With X = E * gather(h): (E * M) h."""
        return (self.R @ X).view(self.P, self.n_out, -1)

    def sum_cols(self, X: torch.Tensor) -> torch.Tensor:
        """Sum of the entries of each column: (N, B) -> (P, n_in, B). With X = E * expand_rows(d): (E * M)^T d."""
        return (self.C @ X).view(self.P, self.n_in, -1)
