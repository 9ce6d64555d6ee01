"""What every population keeps per member beside its tensors: who is still training, each member's
outcome, and the explosion rule that decides it.

`Population` (ephemeral and RNN) and `FamilyPopulation` (fast weights, FWPs) both inherit `MemberBook`,
so the two engines flag explosions, drop members and report summaries the same way. Members keep their
original index (the position of their hyperparameters) for life; the rows of the live tensors are the
members still training, in `member_ids` order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np
import torch

from ..config import TrainConfig
from ..outcomes import Outcome
from .metrics import MemberSummary


class MemberBook:
    """Mixin: per-member bookkeeping and the explosion rule. Subclasses call `_open_book` once and
    define `step()`, `hypers` and `cfg` (a TrainConfig)."""

    cfg: TrainConfig
    hypers: list

    def _open_book(self, n: int, device: torch.device) -> None:
        window = self.cfg.explode_window
        self.member_ids = torch.arange(n, device=device)  # (P,): original index of each live row
        self.loss_hist = torch.full((n, window), math.nan, dtype=torch.float64, device=device)  # (P, window)
        self.best_window = torch.full((n,), math.inf, dtype=torch.float64, device=device)  # (P,)
        # The latest run of consecutive batches above their excursion level (`docs/engine.md`): its first
        # and its last batch (-1, resp. -2, before any: batch 0 starts a run). An explosion's onset is the
        # first, when the run reaches into the window that confirmed it.
        self.above_since = torch.full((n,), -1, dtype=torch.int64, device=device)  # (P,)
        self.above_last = torch.full((n,), -2, dtype=torch.int64, device=device)  # (P,)
        self.batch_index = 0
        self.outcome = [Outcome.RUNNING] * n
        self.explode_step: list[int | None] = [None] * n
        """The batch at which the criterion decided (detection)."""
        self.explode_onset: list[int | None] = [None] * n
        """The first batch of the excursion it confirmed (`docs/engine.md`)."""
        self.steps_done = [0] * n
        self.final: list[dict[str, float]] = [{} for _ in range(n)]
        self.final_step: list[int | None] = [None] * n
        """The batch `final` describes: the explosion batch of an exploded member, else the last
        full-metrics batch."""

    @property
    def size(self) -> int:
        """Members still being trained."""
        return len(self.member_ids)

    @property
    def alive(self) -> list[int]:
        return self.member_ids.tolist()

    def _mark_dropped(self, members: Iterable[int], outcome: Outcome) -> np.ndarray | None:
        """Give the running ones of `members` (original indices) `outcome`; the live rows to keep, as a
        boolean array over `alive` (None when there is nothing to drop)."""
        members = {int(m) for m in members}
        if not members:
            return None
        alive = self.alive
        for m in members:
            if m in alive and self.outcome[m] == Outcome.RUNNING:
                self.outcome[m] = outcome
        return np.array([m not in members for m in alive], dtype=bool)

    def _check_explosion(self, loss: torch.Tensor, max_logit: torch.Tensor) -> np.ndarray:
        """Flag this batch's new explosions (`docs/engine.md`): a non-finite loss or logit at once; after the
        grace, a windowed mean loss above the threshold and above its best by the margin. Records each one's
        detection (this batch) and onset (the first batch of the excursion it confirmed).
        Returns the newly exploded live rows as a boolean array."""
        cfg, i = self.cfg, self.batch_index
        loss = loss.double()
        self.loss_hist[:, i % cfg.explode_window] = loss
        window = self.loss_hist if i + 1 >= cfg.explode_window else self.loss_hist[:, : i + 1]
        mean = window.mean(1)
        # Excursion level: the threshold, and at least the lowest windowed loss before this batch plus the
        # margin (none before batch 0), so that a run sitting at chance level above the threshold is not
        # in an excursion until its loss rises.
        level = torch.clamp(self.best_window + cfg.explode_margin, min=cfg.explode_threshold)
        broken = ~torch.isfinite(loss) | ~torch.isfinite(max_logit)
        above = broken | (loss > level) if i else broken | (loss > cfg.explode_threshold)
        self.above_since = torch.where(above & (self.above_last != i - 1), i, self.above_since)
        self.above_last = torch.where(above, i, self.above_last)
        self.best_window = torch.fmin(self.best_window, mean)
        bad = broken
        if i >= cfg.explode_grace:
            rose = mean > self.best_window + cfg.explode_margin
            bad = bad | ((mean > cfg.explode_threshold) & rose)
        bad = bad.cpu().numpy()
        first = np.array([self.explode_step[m] is None for m in self.alive], dtype=bool)
        newly = bad & first
        if newly.any():
            reaches = ((self.above_since >= 0) & (self.above_last > i - cfg.explode_window)).cpu().numpy()
            since = self.above_since.cpu().numpy()
            alive = self.alive
            for row in np.flatnonzero(newly):
                m = int(alive[row])
                self.explode_step[m] = i
                self.explode_onset[m] = int(since[row]) if reaches[row] else i
                self.outcome[m] = Outcome.EXPLODED
        return newly

    def _record_final(self, step: int, member: np.ndarray, exploded: np.ndarray, full: bool,
                      values: dict[str, np.ndarray]) -> None:
        """Keep each member's `final` metrics: those of its explosion batch once it exploded (kept for good,
        even when it trains on), else those of the latest full-metrics batch. `values`: {name: (n,)}
        aligned with `member`; on a batch that is not full the metrics it did not compute are NaN."""
        for row, m in enumerate(member):
            m = int(m)
            self.steps_done[m] = step + 1
            if self.explode_step[m] is not None and self.explode_step[m] < step:
                continue  # exploded earlier: its final metrics are its explosion batch's
            if full or exploded[row]:
                self.final[m] = {name: float(v[row]) for name, v in values.items()}
                self.final_step[m] = step

    def _end_batch(self, exploded: list[int]) -> None:
        """Close a batch: drop this batch's exploded members (unless the run keeps them), and at the end of
        the budget mark the members still running stable."""
        self.batch_index += 1
        if exploded and self.cfg.stop_on_explosion:
            self.drop(exploded, Outcome.EXPLODED)
        if self.batch_index >= self.cfg.batches:
            for m in self.alive:
                if self.outcome[m] == Outcome.RUNNING:
                    self.outcome[m] = Outcome.STABLE

    def drop(self, members: Iterable[int], outcome: Outcome = Outcome.STOPPED_EARLY) -> None:  # pragma: no cover
        raise NotImplementedError

    def step(self):  # pragma: no cover - every population defines it
        raise NotImplementedError

    def run(self, batches: int | None = None) -> Iterator:
        """Train up to `batches` more batches (default: the rest of the budget), yielding metrics."""
        end = self.cfg.batches if batches is None else min(self.cfg.batches, self.batch_index + batches)
        while self.batch_index < end and self.size > 0:
            yield self.step()

    def summaries(self) -> list[MemberSummary]:
        return [
            MemberSummary(member=m, outcome=self.outcome[m].value, explode_step=self.explode_step[m],
                          explode_onset=self.explode_onset[m], steps_done=self.steps_done[m], final=self.final[m],
                          final_step=self.final_step[m])
            for m in range(len(self.hypers))
        ]
