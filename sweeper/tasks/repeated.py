"""Repeated sequences (paper sec. 4): `abcabcabcabcabca`.

A pattern of k random symbols, k uniform in [period_min, period_max], repeated to a fixed length
of `length` tokens. Pattern symbols are drawn independently (they may repeat inside a pattern).

Memory positions are the targets that repeat an earlier pattern symbol: token index t >= k, i.e.
every target after the first full pattern. The first k tokens are fresh random symbols.

No-memory baseline (exact): seeing only the current symbol x = pattern[t-1 mod k], the target is
pattern[t mod k]. For k = 1 that is x itself; for k >= 2 it is another, independent pattern entry,
uniform over the alphabet. So "predict x" is optimal, scoring w1 + (1 - w1) / n_symbols, where
w1 = (length - 1) / sum_k (length - k) is the share of memory positions that come from period-1
sequences (0 when period_min > 1). Defaults (length 16, k in 1..4, 8 symbols): 15/54 + 39/54/8
= 0.3681. Period 1 alone would make it 1, so period_max >= 2 is required.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import check_int
from .base import SYMBOLS, Batch, SymbolSequence, randint


@dataclass(frozen=True)
class Repeated(SymbolSequence):
    name = "repeated"

    period_min: int = 1
    """Shortest pattern, in symbols (1 .. 16)."""
    period_max: int = 4
    """Longest pattern (max(2, period_min) .. 16); the period is uniform over [period_min,
    period_max]. At least 2: with period 1 only, every target is a copy of the input."""
    length: int = 16
    """Tokens per sequence (> period_max, so every sequence has a memory position); T = length - 1."""
    n_symbols: int = 8
    """Size of the alphabet the pattern symbols are drawn from, uniformly."""

    def __post_init__(self):
        check_int("task.period_min", self.period_min, low=1, high=16)
        check_int("task.period_max", self.period_max, low=max(2, self.period_min), high=16)
        check_int("task.length", self.length, low=self.period_max + 1, high=100_000)
        check_int("task.n_symbols", self.n_symbols, low=2, high=len(SYMBOLS))

    def generate(self, seeds, stream, batch_index, batch_size):
        B, L, K = batch_size, self.length, self.period_max
        low = [self.period_min] + [0] * K
        high = [self.period_max + 1] + [self.n_symbols] * K
        r = randint(seeds, stream, batch_index, (B, 1 + K), low, high)
        k, pattern = r[..., :1], r[..., 1:]            # (P, B, 1), (P, B, K)
        pos = np.arange(L)
        tokens = np.take_along_axis(pattern, pos % k, axis=-1)
        memory = pos[1:] >= k                          # target t+1 repeats token t+1-k
        return Batch(tokens.astype(np.int64), memory)

    def no_memory_baseline(self, n_sequences: int = 20000) -> float:
        """Exact; see the module docstring. `n_sequences` is ignored."""
        periods = np.arange(self.period_min, self.period_max + 1)
        w1 = (self.length - 1) / float(np.sum(self.length - periods)) if self.period_min == 1 else 0.0
        return w1 + (1.0 - w1) / self.n_symbols
