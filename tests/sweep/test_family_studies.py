"""Studies of the fast-weight families (docs/families.md) through `sweeper submit`, on a real local Ray and
both databases: a fastweights grid and an fwp (delta rule, phi silu_l2) optuna study train every member
once, and each member row carries its family, its own axes (eta, beta_scale, lam; plasticity, ratio and
gamma NULL) and per-batch family metrics."""

from __future__ import annotations

import math

import pytest

from tests.helpers.studies import rows
from tests.helpers.sweep import assert_study_sound

pytestmark = pytest.mark.slow

FAMILY_STUDY = """
name = "{name}"
[task]
name = "key_recall"
[model]
{model}
[train]
optimizer = "adam"
batch_size = 4
batches = 12
metrics_every = 4
[search]
kind = "{kind}"
{search}
[[objectives]]
metric = "eval_mem_acc"
{space}
[execution]
seeds = 2
members_per_trial = 4
cpus = 1
report_every = 6
eval_batches = 2
"""

FASTWEIGHTS = dict(
    model='kind = "fastweights"\nhidden = 8\ninner_steps = 1\nlayer_norm = true\nactivation = "relu"',
    kind="grid", search="",
    space="[space.lr]\nvalues = [1e-3, 1e-2]\n[space.eta]\nvalues = [0.0, 0.5]\n[fixed]\nlambda = 0.9\nclip = 5.0\n",
)
FWP = dict(
    model='kind = "fwp"\nd_model = 8\nd_key = 4\nd_value = 4\nlayers = 1\nrule = "delta"\nphi = "silu_l2"\n'
          'psi = "sigmoid"\ndecay = "none"',
    kind="optuna", search='sampler = "tpe"\nconfigs = 3\nseed = 1',
    space="[space.lr]\nlow = 1e-3\nhigh = 3e-2\nlog = true\n[space.beta_scale]\nlow = 0.5\nhigh = 2.0\n",
)
FAMILY_METRICS = ("fast_norm", "grad_fast", "grad_rest", "grad_fast_ratio", "grad_fast_rms_ratio", "transition_max")


def write(tmp_path, name: str, parts: dict) -> str:
    path = tmp_path / f"{name}.toml"
    path.write_text(FAMILY_STUDY.format(name=name, **parts))
    return str(path)


def test_fastweights_grid_and_fwp_optuna_studies_run_and_store_their_family_columns(local_ray, db_url, tmp_path,
                                                                                     capsys):
    from sweeper.cli import main

    assert main(["submit", write(tmp_path, "fw_grid", FASTWEIGHTS), "--storage", db_url, "--no-progress"]) == 0
    assert main(["submit", write(tmp_path, "fwp_tpe", FWP), "--storage", db_url, "--no-progress"]) == 0
    assert_study_sound(db_url, "fw_grid", configs=4, seeds=2)
    assert_study_sound(db_url, "fwp_tpe", configs=3, seeds=2)

    member_sql = ("SELECT m.model_kind, m.lr, m.eta, m.beta_scale, m.lam, m.clip, m.plasticity, m.ratio, m.gamma, "
                  "m.eval_mem_acc, m.eval_mem_acc_frozen, m.config FROM sw_members m JOIN sw_studies s "
                  "ON s.id = m.study_id WHERE s.name = :n ORDER BY m.config_index, m.seed")
    fw = rows(db_url, member_sql, n="fw_grid")
    assert len(fw) == 8 and {r[0] for r in fw} == {"fastweights"}
    assert sorted({(r[1], r[2]) for r in fw}) == [(1e-3, 0.0), (1e-3, 0.5), (1e-2, 0.0), (1e-2, 0.5)]
    assert {(r[3], r[4], r[5], r[6], r[7], r[8]) for r in fw} == {(None, 0.9, 5.0, None, None, None)}
    assert all(r[9] is not None and r[10] is not None for r in fw)
    for r in fw:  # eta = 0 writes nothing to the fast state: the frozen evaluation is the same network
        if r[2] == 0.0:
            assert r[9] == pytest.approx(r[10])

    fwp = rows(db_url, member_sql, n="fwp_tpe")
    assert len(fwp) == 6 and {r[0] for r in fwp} == {"fwp"}
    assert all(r[2] is None and 0.5 <= r[3] <= 2.0 and r[4] == 1.0 and r[6] is None for r in fwp)
    assert all(1e-3 <= r[1] <= 3e-2 for r in fwp)
    config = fwp[0][11]
    config = config if isinstance(config, dict) else __import__("json").loads(config)
    assert config["model"]["phi"] == "silu_l2" and set(config["hyper"]) == {"lr", "beta_scale", "lambda", "clip",
                                                                            "seed"}

    metric_sql = (f"SELECT mm.step, mm.loss, {', '.join('mm.' + n for n in FAMILY_METRICS)}, mm.grad_eph "
                  "FROM sw_member_metrics mm JOIN sw_members m ON m.id = mm.member_id JOIN sw_studies s "
                  "ON s.id = m.study_id WHERE s.name = :n")
    for name, transition in (("fw_grid", False), ("fwp_tpe", True)):
        metrics = rows(db_url, metric_sql, n=name)
        assert metrics and {r[0] for r in metrics} >= {0, 4, 8, 11}
        for r in metrics:
            assert r[-1] is None  # the ephemeral model's metrics stay NULL
            assert all(v is not None for v in r[1:7])
            # transition_max: the delta rule's largest eta_t ||phi(k_t)||^2, NaN for fastweights (Float64 keeps
            # NaN; raw SQL reads it back as stored, a string on SQLite)
            assert math.isfinite(float(r[7])) == transition

    # `sweeper trials` shows the family; csv carries the new columns
    capsys.readouterr()
    assert main(["trials", "fwp_tpe", "--storage", db_url]) == 0
    assert "model_kind" in capsys.readouterr().out
    assert main(["trials", "fw_grid", "--storage", db_url, "--format", "csv", "--filter", "eta>0.1"]) == 0
    out = capsys.readouterr().out.splitlines()
    header = out[0].split(",")
    assert {"model_kind", "eta", "beta_scale", "lam"} <= set(header) and len(out) == 1 + 4

    # the stability boundary is fitted in the family's (lr, eta) plane; 8 members are too few for it
    assert main(["boundary", "fw_grid", "--storage", db_url]) == 2
    assert "a boundary fit needs at least 5 of each" in capsys.readouterr().err
