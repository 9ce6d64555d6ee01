"""n-symbol reversal (paper sec. 4): `abc|cba`, optionally several examples back to back.

Each example is n independent uniform symbols, the separator `|`, then the same n symbols in
reverse order; `repeats` examples make one sequence (`abc|cbaqdd|ddq` for n=3, repeats=2). There
is no padding, so no "always predict padding" shortcut exists.

Memory positions: the n reversed targets of each example (the target after `|` included: it is
the last input symbol, one step back). The first symbols of an example are fresh random draws and
the separator is predictable by counting, so neither is memory.

No-memory baseline (exact): at a memory position the current input is `|` or a reversed symbol,
and the target is a different, independent uniform draw, so the best memoryless predictor scores
1 / n_symbols.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import check_int
from .base import SYMBOLS, Batch, Task, randint

SEPARATOR = 0  # token of `|`; symbol k is token k + 1


@dataclass(frozen=True)
class Reversal(Task):
    name = "reversal"

    n: int = 3
    """Symbols per example, reversed after the separator (the paper uses 2, 3, 4)."""
    n_symbols: int = 8
    """Size of the alphabet the symbols are drawn from, uniformly."""
    repeats: int = 1
    """Examples back to back in one sequence; T = repeats * (2n + 1) - 1."""

    def __post_init__(self):
        check_int("task.n", self.n, low=1, high=16)
        check_int("task.n_symbols", self.n_symbols, low=2, high=len(SYMBOLS))
        check_int("task.repeats", self.repeats, low=1, high=10_000)

    @property
    def vocab(self):
        return ("|", *SYMBOLS[: self.n_symbols])

    @property
    def seq_len(self):
        return self.repeats * (2 * self.n + 1) - 1

    def _layout(self):
        """Per token position: the index of its symbol among the drawn ones (-1 for `|`), and
        whether it is a reversed symbol."""
        n, E = self.n, 2 * self.n + 1
        pos = np.arange(self.repeats * E)
        r, i = pos // E, pos % E
        src = np.where(i < n, r * n + i, r * n + 2 * n - i)
        src[i == n] = -1
        return src, i > n

    def generate(self, seeds, stream, batch_index, batch_size):
        B = batch_size
        symbols = randint(seeds, stream, batch_index, (B, self.repeats * self.n), 1, self.n_symbols + 1)
        src, reversed_ = self._layout()
        tokens = np.where(src >= 0, symbols[..., np.maximum(src, 0)], SEPARATOR)
        memory = np.broadcast_to(reversed_[1:], tokens.shape[:-1] + (len(src) - 1,)).copy()
        return Batch(tokens.astype(np.int64), memory)

    def no_memory_baseline(self, n_sequences: int = 20000) -> float:
        """Exact: 1 / n_symbols (see the module docstring). `n_sequences` is ignored."""
        return 1.0 / self.n_symbols
