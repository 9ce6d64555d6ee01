"""Palindromes of random symbols (paper sec. 4): `abcdcba`, `abccba`.

The first ceil(length / 2) symbols are drawn independently and uniformly; the rest mirror them, so
token t equals token length-1-t.

Memory positions: the second-half targets t whose mirror length-1-t lies at least two tokens back,
i.e. 2t > length. For odd lengths 2m+1 that is t = m+1 .. 2m (m positions); the centre t = m is a
fresh random symbol, not memory. For even lengths 2m it is t = m+1 .. 2m-1 (m-1 positions); the
doubled centre t = m equals the current input t-1 (a copy, no earlier symbol to remember) and is
left out.

No-memory baseline (exact): at every memory position the current input and the target are two
different first-half draws, independent and uniform, so the best memoryless predictor scores
1 / n_symbols.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import check_int
from .base import SYMBOLS, Batch, SymbolSequence, randint


@dataclass(frozen=True)
class Palindrome(SymbolSequence):
    name = "palindrome"

    length: int = 9
    """Tokens per palindrome (>= 3, so there is a memory position); T = length - 1."""
    n_symbols: int = 8
    """Size of the alphabet the symbols are drawn from, uniformly."""

    def __post_init__(self):
        check_int("task.length", self.length, low=3, high=100_000)
        check_int("task.n_symbols", self.n_symbols, low=2, high=len(SYMBOLS))

    def generate(self, seeds, stream, batch_index, batch_size):
        B, L = batch_size, self.length
        half = randint(seeds, stream, batch_index, (B, (L + 1) // 2), 0, self.n_symbols)
        pos = np.arange(L)
        tokens = half[..., np.minimum(pos, L - 1 - pos)]
        memory = np.broadcast_to(2 * pos[1:] > L, tokens.shape[:-1] + (L - 1,)).copy()
        return Batch(tokens.astype(np.int64), memory)

    def no_memory_baseline(self, n_sequences: int = 20000) -> float:
        """Exact: 1 / n_symbols (see the module docstring). `n_sequences` is ignored."""
        return 1.0 / self.n_symbols
