"""The explosion's onset and detection and the batch of the final metrics, from a pack's training to
`sw_members` (SQLite and PostgreSQL): the worker's own code (`sweeper.sweep.pack`) without Ray."""

from __future__ import annotations

import math

import sqlalchemy as sa

from sweeper.db import Member, Outcome, open_db, upgrade
from sweeper.db.queries import MEMBER_COLUMNS, member_rows
from sweeper.study import load_study, parse_study
from sweeper.sweep import pack, store
from tests.helpers.studies import grid_space, write_study


def test_pack_rows_carry_onset_detection_and_final_step(db_url, tmp_path):
    from sweeper.sweep.run import StudyRun

    # lr 5 is broken from its first batches: onset near 0, detected at the grace (50)
    path = write_study(tmp_path, "onset", space=grid_space([1e-2, 5.0]), batches=60)
    upgrade(db_url)
    db = open_db(db_url)
    study_run = StudyRun.start(load_study(str(path)), str(path), db)
    try:
        spec = parse_study(path.read_text(), str(path))
        summaries = {}
        for number in (1,):  # configurations 2 and 3 of the grid: lr 0.01 and lr 5, 2 seeds each
            made = study_run.make_pack(number)
            study_run.on_start(made, f"ray-{number}")
            points = made["points"]
            attempt, _ = store.claim_trial(db, study_run.handle.id, number, ray_trial_id=None, device="cpu")
            trained = pack._train(spec, db, number, points, None, lambda progress: None)
            evaluated, eval_s = pack._evaluate(spec, trained.pop)
            members = pack._member_rows(spec, trained, evaluated, wall_time_s=1.0, device="cpu", version="t")
            store.finish_trial(db, study_run.handle.id, number, attempt, members=members, history=trained.history,
                               result=pack._pack_result(spec, trained, members, eval_s), wall_time_s=1.0)
            summaries.update({(number, s.member): s for s in trained.pop.summaries()})
        with db.read_session() as s:
            found = s.scalars(sa.select(Member).order_by(Member.id)).all()
            got = {(m.trial.number, m.pack_index): m for m in found}
        assert len(got) == 4 and {m.outcome for m in got.values()} == {Outcome.STABLE, Outcome.EXPLODED}
        exploded = [m for m in got.values() if m.outcome == Outcome.EXPLODED]
        assert exploded, "lr 5 should explode"
        for key, m in got.items():
            want = summaries[key]
            assert (m.explode_step, m.explode_onset, m.final_step) == (want.explode_step, want.explode_onset,
                                                                       want.final_step)
            if m.outcome == Outcome.EXPLODED:
                assert 0 <= m.explode_onset <= m.explode_step == m.final_step
                assert m.final_loss == want.final["loss"] or math.isnan(m.final_loss)
            else:
                assert m.explode_onset is None and m.final_step == spec.run.train.batches - 1
            # the memory judgement: a stable member's, at the evaluation's size (one memory position per
            # key-recall sequence); none for an exploded one
            if m.outcome == Outcome.STABLE:
                n = spec.execution.eval_batches * spec.run.train.batch_size
                assert m.eval_mem_positions == n and m.remembers is not None
                assert m.remembers == (m.eval_mem_acc > m.memory_threshold) and 0 < m.memory_threshold < 1
            else:
                assert (m.remembers, m.memory_threshold, m.eval_mem_positions) == (None, None, None)
        rows = member_rows(db, "onset")
        assert list(rows[0]) == list(MEMBER_COLUMNS)
        assert {(r["explode_onset"], r["explode_step"], r["final_step"]) for r in rows} == {
            (m.explode_onset, m.explode_step, m.final_step) for m in got.values()}
    finally:
        study_run.close(succeeded=False)
        db.dispose()
