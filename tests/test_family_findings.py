"""tools/family_findings.py on a tiny database written by hand: the transition-bound table counts each
member where its trace puts it (crossed before, at or after its explosion onset, at initialisation,
never), and the associative-retrieval table's interval is the Student-t interval over the seeds. Every
study the tool reads is a shipped study file that loads."""

from __future__ import annotations

import math

import pytest

from tools import family_findings as ff


def _database(tmp_path):
    from sweeper.db import Member, MemberMetric, Outcome, Study, Trial, TrialStatus, open_db, upgrade

    url = f"sqlite:///{tmp_path / 'findings.sqlite3'}"
    upgrade(url)
    db = open_db(url)
    train = {"train": {"batches": 100, "batch_size": 8}}
    # (outcome, onset, {step: transition_max}) of the DeltaNet study's members; fast_norm is 10 * step
    deltanet = [
        ("exploded", 10, {0: 1.0, 5: 2.5, 10: 3.0, 11: math.nan}),  # crossed 5 batches before its onset
        ("exploded", 7, {0: 1.0, 7: 2.0, 9: 5.0}),                 # 2.0 is no crossing; crossed after the onset
        ("exploded", 4, {0: 0.5, 4: math.inf}),                    # +inf at the onset batch is a crossing
        ("stable", None, {0: 2.1, 50: 1.0}),                       # crossed at initialisation
        ("stable", None, {0: 1.0, 50: 1.5}),                       # never crossed
        ("failed", None, {0: 9.0}),                                # left out
    ]
    with db.session() as s:
        for name in ("deltanet_map_identity_cpu", "assoc_fastweights_h20_cpu"):
            s.add(Study(name=name, spec={"name": name}))
        s.flush()
        ids = {st.name: st.id for st in s.query(Study)}
        trials = {}
        for name, study_id in ids.items():
            trials[name] = Trial(study_id=study_id, number=0, status=TrialStatus.COMPLETE, attempts=1)
            s.add(trials[name])
        s.flush()
        for i, (outcome, onset, trace) in enumerate(deltanet):
            m = Member(trial_id=trials["deltanet_map_identity_cpu"].id, study_id=ids["deltanet_map_identity_cpu"],
                       pack_index=i, config_index=i // 3, model_kind="fwp", lr=1e-2 * (1 + i // 3), beta_scale=4.0,
                       lam=1.0, clip=math.inf, seed=i % 3, config=train, outcome=Outcome(outcome),
                       explode_onset=onset)
            s.add(m)
            s.flush()
            s.add_all(MemberMetric(member_id=m.id, step=step, transition_max=v, fast_norm=10.0 * step)
                      for step, v in trace.items())
        for i, (eta, acc) in enumerate([(0.5, 0.5), (0.5, 0.6), (0.5, 0.7), (0.0, 0.1), (0.0, 0.1)]):
            s.add(Member(trial_id=trials["assoc_fastweights_h20_cpu"].id, study_id=ids["assoc_fastweights_h20_cpu"],
                         pack_index=i, config_index=int(eta == 0.0), model_kind="fastweights", lr=3e-3, eta=eta,
                         lam=0.95, clip=math.inf, seed=i % 3, config=train, outcome=Outcome.STABLE,
                         eval_mem_acc=acc, eval_mem_acc_frozen=0.1, baseline=0.1))
    return url, db


def test_bound_table_places_each_member_by_its_trace_and_onset(tmp_path):
    _, db = _database(tmp_path)
    kept, left = ff.counted(ff.load_members(db, "deltanet_map_identity_cpu"))
    traces = ff.load_signals(db, [m.id for m in kept])
    records = [ff.bound_record(m, traces[m.id]) for m in kept]
    table = ff.bound_table(records, left)

    assert (table.exploded_crossed, table.exploded_not, table.exploded_crossed_later) == (2, 1, 1)
    assert (table.stable_crossed, table.stable_not) == (1, 1)
    assert table.leads == (0, 5)  # onset - first crossing: +inf at the onset itself, 2.5 five batches before
    assert table.crossed_at_start == 1 and table.left_out == {"failed": 1}
    peaks = [r.peak for r in records]
    assert peaks[:2] == [3.0, 2.0] and math.isinf(peaks[2])  # up to the onset only: the later 5.0 is not in it
    assert records[1].peak_run == 5.0 and records[3].peak == 2.1
    assert [r.peak_fast_norm for r in records] == [100.0, 70.0, 40.0, 500.0, 500.0]  # up to the onset, or all


def test_assoc_rows_give_the_t_interval_over_seeds(tmp_path):
    from scipy import stats

    _, db = _database(tmp_path)
    members = ff.load_members(db, "assoc_fastweights_h20_cpu")
    # training memory accuracy at batches 50, 70, 90 of the 100: the windows [60, 80) and [80, 100]
    rows = ff.assoc_rows(members, 20, {m.id: [(50, 0.2), (70, 0.4), (90, 0.6 + 0.1 * (m.eta > 0))] for m in members})
    assert [(r.model, r.counted, r.members) for r in rows] == [("fast weights", 3, 3), ("same net, eta = 0", 2, 2)]
    half = stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3)
    assert rows[0].mean == pytest.approx(0.6)
    assert (rows[0].low, rows[0].high) == pytest.approx((0.6 - half, 0.6 + half))
    assert rows[0].frozen_mean == pytest.approx(0.1) and rows[0].sequences == 800
    assert (rows[0].train_before, rows[0].train_last) == pytest.approx((0.4, 0.7))
    assert (rows[1].train_before, rows[1].train_last) == pytest.approx((0.4, 0.6))


def test_main_prints_every_table_and_names_the_missing_studies(tmp_path, capsys):
    url, _ = _database(tmp_path)
    assert ff.main(["--storage", url]) == 0
    out = capsys.readouterr().out
    assert "| exploded | 2 | 1 (1 crossed only after the onset) | 3 |" in out
    assert "| stable | 1 | 1 | 2 |" in out
    assert "| 20 | fast weights | eta 0.5, lambda 0.95, lr 0.003 | 3 / 3 |" in out
    assert "(study deltanet_map_silu_cpu is not in this database)" in out
    assert "(study fastweights_map_cpu is not in this database)" in out


def test_every_study_it_reads_is_shipped_and_loads():
    import json
    from pathlib import Path

    from sweeper.study import load_study, study_from_dict

    names = [f"assoc_{model}_h{h}_cpu" for h in ff.ASSOC_WIDTHS for model in ("fastweights", "rnn")]
    names += [*ff.DELTANET_STUDIES, ff.FASTWEIGHTS_MAP]
    studies = Path(__file__).resolve().parents[1] / "studies"
    for name in names:
        spec = load_study(studies / f"{name}.toml")
        assert spec.name == name and spec.kind in ("fastweights", "fwp", "rnn")
        assert study_from_dict(json.loads(json.dumps(spec.to_dict(), allow_nan=False))) == spec
