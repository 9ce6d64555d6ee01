"""Key recall (paper sec. 4.1): `0000?10!1`.

Filler zeros, `?`, a value to store, more filler, `!`, and the stored value. The filler gaps are
drawn uniformly from [gap_min, gap_max]; the sequence is padded with filler to a fixed length. The
only target that needs memory is the value after `!`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import check_int
from .base import Batch, Task, randint

VALUE_SYMBOLS = "123456789abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class KeyRecall(Task):
    name = "key_recall"

    gap_min: int = 1
    """Fewest filler symbols before `?` and between the value and `!`."""
    gap_max: int = 3
    """Most filler symbols in each gap."""
    n_values: int = 9
    """Size of the value alphabet (the answer is uniform over it)."""

    def __post_init__(self):
        check_int("task.gap_min", self.gap_min, low=0, high=10_000)
        check_int("task.gap_max", self.gap_max, low=self.gap_min, high=10_000)
        check_int("task.n_values", self.n_values, low=2, high=len(VALUE_SYMBOLS))

    @property
    def vocab(self):
        return ("0", "?", "!", *VALUE_SYMBOLS[: self.n_values])

    @property
    def seq_len(self):
        return 2 * self.gap_max + 3  # tokens: gap, ?, v, gap, !, v  ->  2*gap_max + 4

    def generate(self, seeds, stream, batch_index, batch_size):
        P, B, L = len(seeds), batch_size, self.seq_len + 1
        r = randint(seeds, stream, batch_index, (B, 3), [self.gap_min, self.gap_min, 0],
                    [self.gap_max + 1, self.gap_max + 1, self.n_values])
        g1, g2, value = r[..., 0], r[..., 1], r[..., 2] + 3
        tokens = np.zeros((P, B, L), dtype=np.int64)
        pos = np.arange(L)
        q = g1                     # index of '?'
        bang = g1 + g2 + 2         # index of '!'
        tokens[pos == q[..., None]] = 1
        tokens[pos == (q + 1)[..., None]] = value.reshape(-1)
        tokens[pos == bang[..., None]] = 2
        tokens[pos == (bang + 1)[..., None]] = value.reshape(-1)
        memory = pos[:-1] == bang[..., None]  # the target after '!'
        return Batch(tokens, memory)

    def no_memory_baseline(self, n_sequences: int = 20000) -> float:
        """Exact: the answer after `!` is uniform over the values, whatever the current symbol."""
        return 1.0 / self.n_values
