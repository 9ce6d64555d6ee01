"""Every Optuna sampler a study file may name runs end to end on a real local Ray, single- and
multi-objective, and optuna-dashboard reads the study from sweeper's own database."""

from __future__ import annotations

import json

import pytest

from tests.helpers.studies import rows, write_study
from tests.helpers.sweep import RANGE_SPACE, assert_study_sound

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("sampler, objectives", [
    ("gp", ["eval_mem_acc"]),
    ("cmaes", ["eval_mem_acc"]),
    ("nsga2", ["eval_mem_acc", "explosion_rate"]),
    ("tpe", ["eval_mem_acc", "explosion_rate"]),
])
def test_sampler_runs_and_optuna_hears_every_configuration(local_ray, tmp_path, sampler, objectives):
    from sweeper.sweep.driver import submit

    url = f"sqlite:///{tmp_path / 's.sqlite3'}"
    path = write_study(tmp_path, f"s_{sampler}", kind="optuna", search=f'sampler = "{sampler}"\nconfigs = 4',
                       space=RANGE_SPACE, seeds=1, per_trial=2)
    text = path.read_text()
    if len(objectives) > 1:
        text = text.replace('[[objectives]]\nmetric = "eval_mem_acc"\n',
                            '[[objectives]]\nmetric = "eval_mem_acc"\n[[objectives]]\nmetric = "explosion_rate"\n')
        assert text.count("[[objectives]]") == 2
    path.write_text(text)
    result = submit(str(path), storage=url, progress=False)
    assert result.status == "COMPLETE"
    assert_study_sound(url, f"s_{sampler}", configs=4, seeds=1)
    directions = rows(url, "SELECT direction FROM study_directions ORDER BY objective")
    assert [d for d, in directions] == ["MAXIMIZE", "MINIMIZE"][:len(objectives)]
    # COMPLETE trials carry one value per objective
    for trial_id, in rows(url, "SELECT trial_id FROM trials WHERE state = 'COMPLETE'"):
        assert len(rows(url, "SELECT value FROM trial_values WHERE trial_id = :t", t=trial_id)) == len(objectives)


def test_optuna_dashboard_reads_the_study_from_the_trial_database(local_ray, tmp_path):
    """`optuna-dashboard <url>` on sweeper's database: its API lists the study and its trials."""
    optuna_dashboard = pytest.importorskip("optuna_dashboard")
    import optuna

    from sweeper.sweep.driver import submit

    url = f"sqlite:///{tmp_path / 'd.sqlite3'}"
    submit(str(write_study(tmp_path, "dash")), storage=url, progress=False)
    app = optuna_dashboard.wsgi(optuna.storages.RDBStorage(url))

    def get(path):
        import io
        from wsgiref.util import setup_testing_defaults

        status = {}
        environ = {"PATH_INFO": path, "wsgi.errors": io.StringIO()}
        setup_testing_defaults(environ)
        body = b"".join(app(environ, lambda s, h, exc_info=None: status.setdefault("s", s)))
        assert status["s"].startswith("200"), (path, status)
        return json.loads(body)

    studies = get("/api/studies")["study_summaries"]
    assert [s["study_name"] for s in studies] == ["sweeper/dash"]
    trials = get(f"/api/studies/{studies[0]['study_id']}")["trials"]
    assert len(trials) == 6
