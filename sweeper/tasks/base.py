"""What every task is: a seeded generator of fixed-length symbol sequences.

Shape convention: `(P, B, T + 1)` tokens for P members (one seed each) and B sequences. Inputs are
`tokens[..., :-1]`, targets `tokens[..., 1:]`. `memory` marks, per target position `(P, B, T)`,
the targets that cannot be predicted without remembering earlier symbols.

Randomness is counter-based: the numbers of member p in batch i depend only on
(seed_p, stream, i), never on the other members. A population can therefore drop members, or a
reference loop can run one member alone, and every surviving member still sees the same data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np

TRAIN_STREAM = 0
EVAL_STREAM = 1
BASELINE_STREAM = 2

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    # The finaliser of SplitMix64 (Steele et al. 2014): a bijective mix of a 64-bit counter.
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def uniforms(seeds: np.ndarray, stream: int, batch_index: int, shape: tuple[int, ...]) -> np.ndarray:
    """Uniform floats in [0, 1), shape `(P, *shape)`, a pure function of (seed, stream, batch, position)."""
    seeds = np.asarray(seeds, dtype=np.uint64).reshape(-1)
    n = int(np.prod(shape, dtype=np.int64))
    with np.errstate(over="ignore"):
        key = _splitmix64(_splitmix64(seeds * np.uint64(0x632BE59BD9B4E019) + np.uint64(stream)) + np.uint64(batch_index))
        counters = key[:, None] + np.arange(n, dtype=np.uint64)[None, :] * np.uint64(0xD1B54A32D192ED03)
    bits = _splitmix64(counters) >> np.uint64(11)  # 53 random bits
    return (bits.astype(np.float64) * (1.0 / (1 << 53))).reshape((len(seeds), *shape))


def randint(seeds: np.ndarray, stream: int, batch_index: int, shape: tuple[int, ...], low, high) -> np.ndarray:
    """Integers in [low, high) (broadcastable bounds), shape `(P, *shape)`."""
    u = uniforms(seeds, stream, batch_index, shape)
    low = np.asarray(low)
    high = np.asarray(high)
    return (low + np.floor(u * (high - low))).astype(np.int64)


class Batch(NamedTuple):
    tokens: np.ndarray  # (P, B, T+1) int64
    memory: np.ndarray  # (P, B, T) bool: target needs memory


@dataclass(frozen=True)
class Task:
    """Base class. Subclasses are frozen dataclasses whose fields are the task's parameters."""

    name: ClassVar[str] = ""

    @property
    def vocab(self) -> tuple[str, ...]:
        """The symbols; token k is `vocab[k]`."""
        raise NotImplementedError

    @property
    def seq_len(self) -> int:
        """T: the number of predictions per sequence."""
        raise NotImplementedError

    def generate(self, seeds: np.ndarray, stream: int, batch_index: int, batch_size: int) -> Batch:
        raise NotImplementedError

    def sample(self, seeds, batch_index: int, batch_size: int, stream: int = TRAIN_STREAM) -> Batch:
        """Batch `batch_index` of every member's data stream."""
        seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
        out = self.generate(seeds, stream, batch_index, batch_size)
        P, B, T = len(seeds), batch_size, self.seq_len
        assert out.tokens.shape == (P, B, T + 1) and out.memory.shape == (P, B, T), (out.tokens.shape, out.memory.shape)
        return out

    def no_memory_baseline(self, n_sequences: int = 20000) -> float:
        """Accuracy on memory positions of the best predictor that sees only the current symbol.

        Estimated by counting on `n_sequences` sequences of a dedicated stream: for each input
        symbol, the most frequent target among memory positions wins. This is an upper bound on
        what any memoryless model can score there, so beating it needs memory.
        """
        batch = self.sample(np.array([0]), 0, n_sequences, stream=BASELINE_STREAM)
        x = batch.tokens[0, :, :-1][batch.memory[0]]
        y = batch.tokens[0, :, 1:][batch.memory[0]]
        if len(x) == 0:
            return float("nan")
        V = len(self.vocab)
        counts = np.zeros((V, V), dtype=np.int64)
        np.add.at(counts, (x, y), 1)
        return float(counts.max(axis=1).sum() / len(x))

    def decode(self, tokens) -> str:
        return "".join(self.vocab[int(k)] for k in tokens)

    def params(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


SYMBOLS = "abcdefghijklmnopqrstuvwxyz0123456789"
"""The alphabet of the symbol tasks; a task with `n_symbols` uses the first `n_symbols`."""


class SymbolSequence(Task):
    """A task whose sequences are `length` tokens over the first `n_symbols` of SYMBOLS (subclasses
    declare both fields)."""

    length: int
    n_symbols: int

    @property
    def vocab(self) -> tuple[str, ...]:
        return tuple(SYMBOLS[: self.n_symbols])

    @property
    def seq_len(self) -> int:
        return self.length - 1
