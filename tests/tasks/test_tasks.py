"""Every registered task: shapes, determinism, per-member independence, memory masks checked on
decoded examples, no-memory baselines, and parameter validation."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

from sweeper.config import ConfigError
from sweeper.tasks import EVAL_STREAM, TASKS, TRAIN_STREAM, make_task
from sweeper.tasks.base import BASELINE_STREAM, Task
from sweeper.tasks.text import VOCAB as TEXT_VOCAB
from sweeper.tasks.text import corpus, normalise

# Defaults of every task, plus variants that exercise other code paths.
CONFIGS = [(name, {}) for name in sorted(TASKS)] + [
    ("key_recall", {"gap_min": 0, "gap_max": 5, "n_values": 4}),
    ("repeated", {"period_min": 2, "period_max": 5, "length": 12, "n_symbols": 3}),
    ("repeated", {"period_min": 1, "period_max": 2, "length": 3}),
    ("palindrome", {"length": 8, "n_symbols": 5}),
    ("palindrome", {"length": 3}),
    ("reversal", {"n": 2}),
    ("reversal", {"n": 4, "n_symbols": 12, "repeats": 3}),
    ("reversal", {"n": 1, "repeats": 2}),
    ("associative", {"pairs": 2, "n_keys": 5}),
    ("associative", {"pairs": 26}),
    ("text", {"length": 17}),
]
IDS = [name + "".join(f"-{k}={v}" for k, v in p.items()) for name, p in CONFIGS]


@pytest.fixture(params=CONFIGS, ids=IDS)
def task(request) -> Task:
    name, params = request.param
    return make_task(name, **params)


def test_every_task_is_covered():
    assert {name for name, _ in CONFIGS} == set(TASKS)
    assert set(TASKS) >= {"key_recall", "repeated", "palindrome", "reversal", "associative", "text"}


def test_shapes_and_vocab(task):
    b = task.sample([3, 4, 5], 0, 7)
    T = task.seq_len
    assert b.tokens.shape == (3, 7, T + 1) and b.tokens.dtype == np.int64
    assert b.memory.shape == (3, 7, T) and b.memory.dtype == np.bool_
    assert b.tokens.min() >= 0 and b.tokens.max() < len(task.vocab)
    assert all(isinstance(s, str) and len(s) == 1 for s in task.vocab)
    assert len(set(task.vocab)) == len(task.vocab)


def test_deterministic_and_member_independent(task):
    a = task.sample([5, 9], 3, 6)
    again = task.sample([5, 9], 3, 6)
    alone = task.sample([9], 3, 6)
    np.testing.assert_array_equal(a.tokens, again.tokens)
    np.testing.assert_array_equal(a.memory, again.memory)
    np.testing.assert_array_equal(a.tokens[1], alone.tokens[0])
    np.testing.assert_array_equal(a.memory[1], alone.memory[0])
    # A smaller batch is a prefix of a larger one.
    np.testing.assert_array_equal(task.sample([9], 3, 4).tokens[0], alone.tokens[0, :4])


def test_streams_batches_and_seeds_differ(task):
    base = task.sample([5], 0, 32).tokens
    assert not np.array_equal(base, task.sample([5], 1, 32).tokens)
    assert not np.array_equal(base, task.sample([5], 0, 32, stream=EVAL_STREAM).tokens)
    assert not np.array_equal(base, task.sample([6], 0, 32).tokens)
    assert np.array_equal(base, task.sample([5], 0, 32, stream=TRAIN_STREAM).tokens)


# ---- memory masks, checked on decoded strings -------------------------------------------------


def _check_key_recall(task, s, m):
    bang = s.index("!")
    assert s.count("?") == 1 and s.count("!") == 1
    assert s[bang + 1] == s[s.index("?") + 1] != "0"
    assert m == [j + 1 == bang + 1 for j in range(len(m))]


def _check_repeated(task, s, m):
    k = m.index(True) + 1  # the first memory target is token k
    assert task.period_min <= k <= task.period_max
    assert all(s[t] == s[t % k] for t in range(len(s)))
    assert m == [t >= k for t in range(1, len(s))]


def _check_palindrome(task, s, m):
    L = len(s)
    assert s == s[::-1] and L == task.length
    assert m == [2 * t > L for t in range(1, L)]
    for t in range(1, L):
        if m[t - 1]:
            assert s[t] == s[L - 1 - t] and L - 1 - t < t - 1  # an earlier symbol, not the input


def _check_reversal(task, s, m):
    n, E = task.n, 2 * task.n + 1
    assert len(s) == task.repeats * E
    for r in range(task.repeats):
        ex = s[r * E : (r + 1) * E]
        assert ex[n] == "|" and "|" not in ex[:n] + ex[n + 1 :]
        assert ex[n + 1 :] == ex[:n][::-1]
    for t in range(1, len(s)):
        i = t % E
        assert m[t - 1] == (i > n)
        if m[t - 1]:
            mirror = t - 2 * (i - n)  # the input symbol this target repeats
            assert s[t] == s[mirror] and mirror < t - 1  # an earlier symbol, not the input


def _check_associative(task, s, m):
    K = task.pairs
    keys, values = s[0 : 2 * K : 2], s[1 : 2 * K : 2]
    assert len(s) == 2 * K + 4 and len(set(keys)) == K
    assert all(k.isalpha() for k in keys) and all(v.isdigit() for v in values)
    assert s[2 * K : 2 * K + 2] == "??"
    assert s[-2] in keys and s[-1] == values[keys.index(s[-2])]
    assert m == [False] * (len(s) - 2) + [True]


def _check_text(task, s, m):
    assert all(m) and len(s) == task.length
    assert s in _corpus_text()


_CORPUS_TEXT: list[str] = []


def _corpus_text() -> str:
    if not _CORPUS_TEXT:
        _CORPUS_TEXT.append("".join(TEXT_VOCAB[k] for k in corpus()))
    return _CORPUS_TEXT[0]


CHECKS = {
    "key_recall": _check_key_recall,
    "repeated": _check_repeated,
    "palindrome": _check_palindrome,
    "reversal": _check_reversal,
    "associative": _check_associative,
    "text": _check_text,
}


def test_memory_masks_on_decoded_examples(task):
    b = task.sample([11, 12], 2, 50)
    for p in range(2):
        for r in range(50):
            CHECKS[task.name](task, task.decode(b.tokens[p, r]), b.memory[p, r].tolist())
    assert b.memory.any(axis=-1).all()  # every sequence has a memory position


def test_repeated_period_is_uniform():
    task = make_task("repeated", period_min=2, period_max=5, length=12)
    k = task.sample([1], 0, 8000).memory[0].argmax(axis=-1) + 1
    freq = np.bincount(k, minlength=6)[2:] / len(k)
    np.testing.assert_allclose(freq, 0.25, atol=0.02)


def test_associative_query_and_values_are_uniform():
    task = make_task("associative", pairs=4)
    tok = task.sample([1], 0, 20000).tokens[0]
    q = np.argmax(tok[:, 0:8:2] == tok[:, [10]], axis=-1)
    np.testing.assert_allclose(np.bincount(q, minlength=4) / len(q), 0.25, atol=0.015)
    np.testing.assert_allclose(np.bincount(tok[:, -1] - 1, minlength=10) / len(q), 0.1, atol=0.01)


# ---- no-memory baselines ----------------------------------------------------------------------


def _expected_baseline(name, params):
    t = make_task(name, **params)
    if name == "key_recall":
        return 1 / t.n_values
    if name == "repeated":
        ks = np.arange(t.period_min, t.period_max + 1)
        w1 = (t.length - 1) / np.sum(t.length - ks) if t.period_min == 1 else 0.0
        return w1 + (1 - w1) / t.n_symbols
    if name in ("palindrome", "reversal"):
        return 1 / t.n_symbols
    if name == "associative":
        return 0.1
    if name == "text":
        return None  # corpus-dependent; checked against the empirical estimate only
    raise AssertionError(name)


@pytest.mark.parametrize(("name", "params"), CONFIGS, ids=IDS)
def test_no_memory_baseline(name, params):
    task = make_task(name, **params)
    value = task.no_memory_baseline()
    assert 0 < value < 1
    expected = _expected_baseline(name, params)
    if expected is not None:
        assert value == pytest.approx(expected, abs=0.01 if name == "key_recall" else 1e-12)
    # The empirical estimate (the base class's counting) agrees with the override. It is biased
    # upwards by the max over noisy counts, so use enough memory positions for that to be small.
    b = task.sample([0], 0, 1, stream=BASELINE_STREAM)
    per_seq = max(1, int(b.memory.sum()))
    n = int(np.clip(400_000 // per_seq, 20_000, 300_000))
    empirical = Task.no_memory_baseline(task, n_sequences=n)
    assert empirical == pytest.approx(value, abs=0.01)


def test_text_baseline_is_bigram_accuracy():
    # All positions are memory positions, so the baseline is the best bigram predictor's accuracy:
    # well above chance, well below 1.
    assert 0.2 < make_task("text").no_memory_baseline() < 0.4


def test_text_normalisation():
    assert normalise("Hello,   W\u00f6rld!\u2019\n\n\n\n  x\ty  ") == "hello, w rld!'\n\nx y "
    c = corpus()
    assert c.dtype == np.int64 and c.min() >= 0 and c.max() < len(TEXT_VOCAB) and len(c) > 100_000
    assert corpus() is c  # built once


# ---- validation -------------------------------------------------------------------------------

BAD = [
    ("key_recall", {"gap_max": 0, "gap_min": 1}, "task.gap_max"),
    ("repeated", {"period_min": 0}, "task.period_min"),
    ("repeated", {"period_max": 17}, "task.period_max"),
    ("repeated", {"period_min": 1, "period_max": 1}, "task.period_max"),
    ("repeated", {"period_min": 3, "period_max": 2}, "task.period_max"),
    ("repeated", {"period_max": 4, "length": 4}, "task.length"),
    ("repeated", {"n_symbols": 1}, "task.n_symbols"),
    ("palindrome", {"length": 2}, "task.length"),
    ("palindrome", {"n_symbols": 0}, "task.n_symbols"),
    ("reversal", {"n": 0}, "task.n"),
    ("reversal", {"n": 17}, "task.n"),
    ("reversal", {"repeats": 0}, "task.repeats"),
    ("reversal", {"n": 2.0}, "task.n"),
    ("associative", {"pairs": 0}, "task.pairs"),
    ("associative", {"pairs": 5, "n_keys": 4}, "task.n_keys"),
    ("associative", {"n_keys": 27}, "task.n_keys"),
    ("text", {"length": 1}, "task.length"),
    ("text", {"length": "64"}, "task.length"),
]


@pytest.mark.parametrize(("name", "params", "field"), BAD)
def test_bad_parameters(name, params, field):
    with pytest.raises(ConfigError) as err:
        make_task(name, **params)
    assert err.value.field == field and field in str(err.value)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_unknown_parameter_and_bool_refused(name):
    with pytest.raises(ConfigError) as err:
        make_task(name, nonsense=1)
    assert err.value.field == "task.nonsense"
    for f in fields(TASKS[name]):
        with pytest.raises(ConfigError) as err:
            make_task(name, **{f.name: True})
        assert err.value.field == f"task.{f.name}"


def test_unknown_task():
    with pytest.raises(ConfigError) as err:
        make_task("nope")
    assert err.value.field == "task.name"


@pytest.mark.parametrize("name", sorted(TASKS))
def test_fields_documented_and_params_roundtrip(name):
    import ast
    import inspect

    cls = TASKS[name]
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body
    documented = {
        stmt.target.id
        for stmt, nxt in zip(body, body[1:])
        if isinstance(stmt, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
    }
    assert documented == {f.name for f in fields(cls)}
    task = make_task(name)
    assert make_task(name, **task.params()) == task
