"""Natural text: windows of English prose from the Python documentation.

The corpus is built from text already installed, nothing is downloaded: the standard library's
`pydoc_data.topics.topics` (the help() topics of the language reference), values joined with a
newline in sorted-key order. It is normalised to a fixed character vocabulary (`VOCAB`):
typographic quotes and dashes become their ASCII forms, upper case becomes lower case, any other
character becomes a space, runs of spaces collapse to one, spaces next to a newline are dropped,
and runs of blank lines collapse to one blank line. The corpus is built once per process and
cached. It depends on the Python version (421,711 characters on 3.11); `corpus_fingerprint()`
identifies it.

A sequence is a window of `length` characters starting at a uniform random offset.

Memory positions: all targets. The no-memory baseline is then the accuracy of the best bigram
predictor (most frequent next character given the current one), computed exactly from the corpus
with each bigram weighted by the number of windows that contain it (0.277 at length 64 on
Python 3.11).
"""

from __future__ import annotations

import functools
import hashlib
import re
import string
from dataclasses import dataclass

import numpy as np

from ..config import check_int
from .base import Batch, Task, randint

PUNCTUATION = ".,;:!?'\"()[]-"
VOCAB = ("\n", " ", *string.ascii_lowercase, *string.digits, *PUNCTUATION)
_TYPOGRAPHIC = {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"}


def normalise(text: str) -> str:
    """Map `text` onto `VOCAB` (see the module docstring)."""
    allowed = set(VOCAB)
    text = "".join(_TYPOGRAPHIC.get(c, c) for c in text).lower()
    text = "".join(c if c in allowed else " " for c in text)
    text = re.sub(r" +", " ", text)
    text = re.sub(r" ?\n ?", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text)


@functools.cache
def corpus() -> np.ndarray:
    """The normalised corpus as tokens (indices into `VOCAB`), int64; built once per process."""
    from pydoc_data.topics import topics

    text = normalise("\n".join(topics[k] for k in sorted(topics)))
    lut = np.zeros(128, dtype=np.int64)
    for k, c in enumerate(VOCAB):
        lut[ord(c)] = k
    out = lut[np.frombuffer(text.encode("ascii"), dtype=np.uint8)]
    out.setflags(write=False)
    return out


def corpus_fingerprint() -> str:
    """Length and SHA-256 prefix of the corpus, to record next to results."""
    c = corpus()
    return f"{len(c)}:{hashlib.sha256(c.tobytes()).hexdigest()[:16]}"


@functools.cache
def _bigram_baseline(length: int) -> float:
    c = corpus()
    N, V = len(c), len(VOCAB)
    i = np.arange(N - 1)
    # Windows start at o in [0, N - length]; bigram (i, i+1) lies in those with i+2-length <= o <= i.
    weight = np.minimum(i, N - length) - np.maximum(0, i + 2 - length) + 1
    counts = np.bincount(c[:-1] * V + c[1:], weights=weight, minlength=V * V).reshape(V, V)
    return float(counts.max(axis=1).sum() / counts.sum())


@dataclass(frozen=True)
class Text(Task):
    name = "text"

    length: int = 64
    """Characters per window; T = length - 1."""

    def __post_init__(self):
        check_int("task.length", self.length, low=2, high=100_000)

    @property
    def vocab(self):
        return VOCAB

    @property
    def seq_len(self):
        return self.length - 1

    def generate(self, seeds, stream, batch_index, batch_size):
        c = corpus()
        L = self.length
        assert len(c) >= L, (len(c), L)
        offset = randint(seeds, stream, batch_index, (batch_size,), 0, len(c) - L + 1)
        tokens = c[offset[..., None] + np.arange(L)]
        memory = np.ones(tokens.shape[:-1] + (L - 1,), dtype=bool)
        return Batch(tokens, memory)

    def no_memory_baseline(self, n_sequences: int = 20000) -> float:
        """Exact best-bigram accuracy over the window distribution. `n_sequences` is ignored."""
        return _bigram_baseline(self.length)
