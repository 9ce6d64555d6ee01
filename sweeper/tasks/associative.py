"""Associative retrieval (Ba et al. 2016, "Using fast weights to attend to the recent past"):
`c9k8j3f1??c9`.

`pairs` distinct keys (letters, drawn without replacement from the first `n_keys` letters), each
followed by a value (one of the 10 digits, independent and uniform; values may repeat), then
`??`, a query key chosen uniformly among the keys, and its value.

Memory position: the answer (the target after the query key) only. Everything before it is
random or, for `??` and the query, predictable by counting.

No-memory baseline (exact): the answer is uniform over the 10 digits whatever the query key is,
so the best memoryless predictor scores 0.1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import check_int
from .base import Batch, Task, uniforms

LETTERS = "abcdefghijklmnopqrstuvwxyz"
DIGITS = "0123456789"
QUERY = 0  # token of `?`; digit d is token 1 + d, letter j is token 11 + j


@dataclass(frozen=True)
class Associative(Task):
    name = "associative"

    pairs: int = 4
    """Key-value pairs per sequence; T = 2 * pairs + 3."""
    n_keys: int = 26
    """Size of the key alphabet (the first n_keys letters); >= pairs, as keys are distinct."""

    def __post_init__(self):
        check_int("task.pairs", self.pairs, low=1, high=len(LETTERS))
        check_int("task.n_keys", self.n_keys, low=max(2, self.pairs), high=len(LETTERS))

    @property
    def vocab(self):
        return ("?", *DIGITS, *LETTERS[: self.n_keys])

    @property
    def seq_len(self):
        return 2 * self.pairs + 3

    def generate(self, seeds, stream, batch_index, batch_size):
        B, K, n = batch_size, self.pairs, self.n_keys
        u = uniforms(seeds, stream, batch_index, (B, n + K + 1))
        keys = np.argsort(u[..., :n], axis=-1, kind="stable")[..., :K] + 1 + len(DIGITS)  # distinct
        values = np.floor(u[..., n : n + K] * len(DIGITS)).astype(np.int64) + 1
        q = np.floor(u[..., n + K :] * K).astype(np.int64)                                # (P, B, 1)
        P, L = len(keys), 2 * K + 4
        tokens = np.empty((P, B, L), dtype=np.int64)
        tokens[..., 0 : 2 * K : 2] = keys
        tokens[..., 1 : 2 * K : 2] = values
        tokens[..., 2 * K] = QUERY
        tokens[..., 2 * K + 1] = QUERY
        tokens[..., 2 * K + 2] = np.take_along_axis(keys, q, axis=-1)[..., 0]
        tokens[..., 2 * K + 3] = np.take_along_axis(values, q, axis=-1)[..., 0]
        memory = np.zeros((P, B, L - 1), dtype=bool)
        memory[..., -1] = True
        return Batch(tokens, memory)

    def no_memory_baseline(self, n_sequences: int = 20000) -> float:
        """Exact: 0.1 (see the module docstring). `n_sequences` is ignored."""
        return 1.0 / len(DIGITS)
