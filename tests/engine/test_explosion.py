"""The explosion rule (docs/engine.md): detection and onset. `MemberBook` on hand-made loss sequences,
against the reference's plain reading of the rule; then the engine's own runs, and the metrics an
exploded member ends with."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sweeper.config import Hyper, ModelConfig, RunConfig, TrainConfig
from sweeper.engine.members import MemberBook
from sweeper.engine.metrics import EVERY_STEP_NAMES, METRIC_NAMES
from sweeper.engine.population import Population
from sweeper.engine.reference import explosion
from sweeper.outcomes import Outcome
from sweeper.tasks import make_task


class Book(MemberBook):
    """Just the bookkeeping, fed batch losses by hand."""

    def __init__(self, n: int, cfg: TrainConfig):
        self.cfg, self.hypers = cfg, [None] * n
        self._open_book(n, torch.device("cpu"))


def feed(losses, logits=None, **train) -> tuple[Book, TrainConfig]:
    """losses: (batches, P) (or (batches,) for one member); returns the book after every batch."""
    losses = np.asarray(losses, dtype=np.float64)
    losses = losses[:, None] if losses.ndim == 1 else losses
    logits = np.ones_like(losses) if logits is None else np.asarray(logits, dtype=np.float64).reshape(losses.shape)
    cfg = TrainConfig(batches=len(losses), stop_on_explosion=False, **train)
    book = Book(losses.shape[1], cfg)
    for loss, logit in zip(losses, logits):
        book._check_explosion(torch.from_numpy(loss), torch.from_numpy(logit))
        book._end_batch([])
    return book, cfg


def detected(book: Book) -> list[tuple[int | None, int | None]]:
    return list(zip(book.explode_step, book.explode_onset))


def test_a_run_broken_from_its_first_batch_has_onset_0_and_is_detected_at_the_grace():
    losses = 1e3 * 1.05 ** np.arange(80)
    book, cfg = feed(losses)
    assert detected(book) == [(50, 0)] == [explosion(losses, np.ones(80), cfg)]
    assert book.outcome == [Outcome.EXPLODED]


def test_a_late_explosion_starts_at_the_first_batch_of_its_excursion():
    calm = np.full(120, 1.0)
    calm[30] = 3.0  # a one-batch spike long before: not part of the excursion
    rising = calm.copy()
    rising[80:] = 3.0  # the window's mean passes 2 at the sixth batch above it
    dipping = calm.copy()
    dipping[80:84], dipping[84:] = 3.0, 1.5  # confirmed at 88, on a batch below the threshold
    book, cfg = feed(np.stack([rising, dipping, calm], 1))
    assert detected(book) == [(85, 80), (88, 80), (None, None)]
    for k, losses in enumerate((rising, dipping, calm)):
        assert detected(book)[k] == explosion(losses, np.ones(120), cfg)


def test_a_nonfinite_batch_is_its_own_onset_and_detection():
    losses = np.ones((30, 3))
    logits = np.ones((30, 3))
    losses[7, 0] = math.nan
    losses[12, 1] = math.inf
    logits[9, 2] = math.inf  # the loss is finite; a logit is not
    book, _ = feed(losses, logits)
    assert detected(book) == [(7, 7), (12, 12), (9, 9)]  # inside the grace: at once


def test_a_run_at_chance_level_above_the_threshold_starts_its_excursion_when_its_loss_rises():
    """ln V can exceed the threshold: sitting at chance is not an excursion; rising above it by the margin is."""
    losses = np.full(150, 2.5)
    losses[100:] = 5.0
    book, cfg = feed(losses)
    assert detected(book) == [(102, 100)] == [explosion(losses, np.ones(150), cfg)]


@pytest.mark.parametrize("grace,window,seed", [(20, 6, 0), (5, 10, 1), (50, 3, 2)])
def test_the_book_agrees_with_the_reference_on_random_histories(grace, window, seed):
    rng = np.random.default_rng(seed)
    P, T = 60, 160
    log_loss = np.log(2.5) + np.cumsum(rng.normal(0, 0.08, (T, P)), 0) + rng.normal(0, 0.3, (1, P))
    losses = np.exp(log_loss)
    jumps = rng.integers(0, T, P)
    for p in range(0, P, 3):  # a third of them jump up at a random batch
        losses[jumps[p]:, p] *= rng.uniform(1.5, 20)
    for p in range(1, P, 7):
        losses[jumps[p], p] = math.nan
    logits = np.ones_like(losses)
    logits[jumps[2], 2] = math.inf
    book, cfg = feed(losses, logits, explode_grace=grace, explode_window=window)
    expected = [explosion(losses[:, p], logits[:, p], cfg) for p in range(P)]
    assert detected(book) == expected
    assert 10 < sum(d is not None for d, _ in expected) < P  # both kinds of member are there
    assert any(d is not None and o < d for d, o in expected)  # onsets before detections occur
    assert all(o <= d for d, o in expected if d is not None)


# ---------------------------------------------------------------------------------------------------
# The engine


TASK = make_task("key_recall", gap_min=1, gap_max=2)
BROKEN = Hyper(lr=50.0, plasticity=1.0, ratio=0.1, gamma=0.7, seed=0)
STABLE = Hyper(lr=3e-3, plasticity=300, ratio=0.1, gamma=0.7, seed=0)


def tiny_run(batches=24, metrics_every=1, stop=False, grace=5) -> RunConfig:
    return RunConfig(task=TASK, model=ModelConfig(kind="ephemeral", depth=2, width=12),
                     train=TrainConfig(updater="backprop", batch_size=2, batches=batches, metrics_every=metrics_every,
                                       stop_on_explosion=stop, explode_grace=grace))


def test_engine_dates_a_broken_run_from_batch_0_and_keeps_its_explosion_batch_metrics():
    run = tiny_run()
    pop = Population(run, [STABLE, BROKEN])
    history = list(pop.run())  # the broken member trains on (stop_on_explosion off)
    rows = [m.for_member(1) for m in history]
    s = pop.summaries()
    assert (s[1].explode_step, s[1].explode_onset) == (5, 0)  # detected at the grace
    assert (s[1].explode_step, s[1].explode_onset) == explosion([r["loss"] for r in rows],
                                                                [r["max_logit"] for r in rows], run.train)
    assert (s[0].explode_step, s[0].explode_onset, s[0].final_step) == (None, None, run.train.batches - 1)
    # final: the explosion batch's metrics, kept while the member trains on
    assert s[1].final_step == 5 and s[1].steps_done == run.train.batches
    assert s[1].final == pytest.approx(rows[5], nan_ok=True) and s[1].final != pytest.approx(rows[-1], nan_ok=True)


def test_final_metrics_of_an_explosion_between_full_batches():
    """metrics_every = 10: the explosion batch (5) is not a full-metrics one; its every-batch metrics are
    kept, the others are NaN, and `final_step` says which batch they are from."""
    pop = Population(tiny_run(metrics_every=10, stop=True), [STABLE, BROKEN])
    history = list(pop.run())
    s = pop.summaries()
    assert s[1].outcome == "exploded" and s[1].final_step == s[1].explode_step == 5 and s[1].steps_done == 6
    at = history[5]
    assert not at.full and at.exploded.tolist() == [False, True]
    for name in METRIC_NAMES:
        if name in EVERY_STEP_NAMES:
            assert s[1].final[name] == at.for_member(1)[name]
        else:
            assert math.isnan(s[1].final[name])
    assert s[0].final_step == 23 and not math.isnan(s[0].final["grad_slow"])
