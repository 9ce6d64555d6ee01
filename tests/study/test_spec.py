"""Study files: the shipped studies load, points and members are right, and malformed files are
refused before any compute with the file and the field named."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from sweeper.config import ConfigError, Hyper
from sweeper.study import (
    HYPER_AXES,
    OBJECTIVE_METRICS,
    Axis,
    StudyError,
    load_study,
    parse_study,
    study_from_dict,
)

STUDIES = Path(__file__).resolve().parents[2] / "studies"
SHIPPED = tuple(sorted(p.stem for p in STUDIES.glob("*.toml")))
"""Every study file shipped in studies/: each must load, and round-trip through its stored form."""

# A small valid study, one chunk per section, so a case can swap or drop one.
SECTIONS = {
    "top": 'name = "t"\n',
    "task": '[task]\nname = "key_recall"\n',
    "model": "[model]\nwidth = 16\n",
    "train": "[train]\nbatches = 50\n",
    "search": '[search]\nkind = "random"\nconfigs = 4\nseed = 0\n',
    "objectives": '[[objectives]]\nmetric = "eval_mem_acc"\n',
    "space": "[space.lr]\nlow = 1e-3\nhigh = 1e-1\nlog = true\n\n[space.plasticity]\nvalues = [1e2, 1e3]\n",
    "fixed": "[fixed]\ngamma = 0.7\n",
    "execution": "[execution]\nseeds = 2\nmembers_per_trial = 4\n",
    "early_warning": "[early_warning]\nenabled = false\n",
}


def study(**chunks: str | None) -> str:
    """The base study with some sections replaced (None drops one)."""
    parts = {**SECTIONS, **chunks}
    return "\n".join(text for text in parts.values() if text is not None)


GRID_SPACE = "[space.lr]\nlow = 1e-3\nhigh = 1e-1\nlog = true\nnum = 3\n\n[space.plasticity]\nvalues = [1e2, 1e3]\n"
GRID_SEARCH = '[search]\nkind = "grid"\n'
CMAES = '[search]\nkind = "optuna"\nsampler = "cmaes"\nconfigs = 4\n'
TWO_CONTINUOUS = "[space.lr]\nlow = 1e-3\nhigh = 1e-1\nlog = true\n[space.ratio]\nlow = 0.05\nhigh = 0.2\n"
TWO_OBJECTIVES = '[[objectives]]\nmetric = "eval_mem_acc"\n[[objectives]]\nmetric = "explosion_rate"\n'


# --- the shipped studies -----------------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_studies_load(name):
    spec = load_study(STUDIES / f"{name}.toml")
    assert spec.name == name
    assert spec.path == str(STUDIES / f"{name}.toml")
    assert spec.source == (STUDIES / f"{name}.toml").read_text()
    assert spec.execution.members_per_trial % len(spec.execution.seeds) == 0
    assert spec.n_trials() == math.ceil(spec.search.configs / spec.configs_per_trial)


def test_quickstart_is_small():
    spec = load_study(STUDIES / "quickstart.toml")
    assert (spec.search.kind, spec.search.configs, spec.execution.seeds) == ("random", 8, (0, 1))
    assert spec.execution.members_per_trial == 4 and spec.configs_per_trial == 2 and spec.n_trials() == 4
    assert spec.run.task.name == "key_recall" and spec.run.train.updater == "dfa"
    assert not spec.run.model.recurrence and spec.run.train.device == "cpu" and spec.execution.gpus == 0
    assert [o.metric for o in spec.objectives] == ["eval_mem_acc"]
    lr, plasticity = spec.space
    assert lr.low <= 1e-2 <= lr.high and plasticity.low <= 1e3 <= plasticity.high  # the known-good point


def test_fig7_grid_is_the_papers_sweep():
    spec = load_study(STUDIES / "fig7_reversal3_grid.toml")
    assert spec.run.task.name == "reversal" and spec.run.task.n == 3
    assert spec.run.train.explode_threshold == 2.0 and len(spec.execution.seeds) == 10
    lr, plasticity = spec.space
    assert lr.log and plasticity.log
    points = spec.points()
    assert len(points) == spec.search.configs == len(lr.values) * len(plasticity.values)
    assert len({(p["lr"], p["plasticity"]) for p in points}) == len(points)
    # log spacing: equal ratios between neighbours
    for axis in spec.space:
        ratios = [b / a for a, b in zip(axis.values, axis.values[1:])]
        assert max(ratios) == pytest.approx(min(ratios), rel=1e-9)


def test_keyrecall_optuna_searches_all_five_axes():
    spec = load_study(STUDIES / "keyrecall_optuna.toml")
    assert (spec.search.kind, spec.search.sampler) == ("optuna", "tpe")
    assert tuple(a.name for a in spec.space) == HYPER_AXES
    assert spec.objectives[0].metric == "eval_mem_acc" and spec.objectives[0].direction == "maximize"
    with pytest.raises(StudyError) as err:
        spec.points()
    assert err.value.field == "search.kind"


# --- points, members, serialisation -------------------------------------------------------------


def test_grid_points_are_the_cartesian_product_in_order():
    spec = parse_study(study(search=GRID_SEARCH, space=GRID_SPACE))
    assert spec.search.configs == 6 and spec.space[0].values == (1e-3, 1e-2, 1e-1)
    assert spec.points() == [
        {"lr": 1e-3, "plasticity": 100.0}, {"lr": 1e-3, "plasticity": 1000.0},
        {"lr": 1e-2, "plasticity": 100.0}, {"lr": 1e-2, "plasticity": 1000.0},
        {"lr": 1e-1, "plasticity": 100.0}, {"lr": 1e-1, "plasticity": 1000.0},
    ]
    assert spec.points() == parse_study(study(search=GRID_SEARCH, space=GRID_SPACE)).points()


def test_grid_axis_order_does_not_depend_on_the_file():
    swapped = "[space.plasticity]\nvalues = [1e2, 1e3]\n\n[space.lr]\nlow = 1e-3\nhigh = 1e-1\nlog = true\nnum = 3\n"
    a = parse_study(study(search=GRID_SEARCH, space=GRID_SPACE))
    b = parse_study(study(search=GRID_SEARCH, space=swapped))
    assert a.points() == b.points()


def test_linear_grid_spacing():
    space = "[space.ratio]\nlow = 0.0\nhigh = 0.3\nnum = 4\n"
    spec = parse_study(study(search=GRID_SEARCH, space=space))
    assert spec.space[0].values == (0.0, 0.1, 0.2, 0.3)


def test_random_points_are_seeded_bounded_and_log_uniform():
    spec = parse_study(study(search='[search]\nkind = "random"\nconfigs = 400\nseed = 3\n'))
    points = spec.points()
    assert points == spec.points() and len(points) == 400
    assert all(1e-3 <= p["lr"] <= 1e-1 and p["plasticity"] in (100.0, 1000.0) for p in points)
    logs = sorted(math.log10(p["lr"]) for p in points)
    assert logs[len(logs) // 2] == pytest.approx(-2.0, abs=0.15)  # the median of log-uniform on [1e-3, 1e-1]
    assert {p["plasticity"] for p in points} == {100.0, 1000.0}
    other = parse_study(study(search='[search]\nkind = "random"\nconfigs = 400\nseed = 4\n')).points()
    assert other != points
    # more configurations extend the list instead of redrawing it
    fewer = parse_study(study(search='[search]\nkind = "random"\nconfigs = 10\nseed = 3\n')).points()
    assert fewer == points[:10]


def test_hypers_one_member_per_seed():
    spec = parse_study(study(execution="[execution]\nseeds = [3, 7]\nmembers_per_trial = 2\n"))
    members = spec.hypers({"lr": 0.01, "plasticity": 1000.0})
    assert members == [Hyper(lr=0.01, plasticity=1000.0, gamma=0.7, seed=3),
                       Hyper(lr=0.01, plasticity=1000.0, gamma=0.7, seed=7)]
    assert members[0].ratio == Hyper().ratio and math.isinf(members[0].clip)
    with pytest.raises(ConfigError) as err:
        spec.hypers({"lr": -1.0, "plasticity": 1000.0})
    assert err.value.field == "lr"
    with pytest.raises(ConfigError):
        spec.hypers({"lr": 0.01})
    with pytest.raises(ConfigError):
        spec.hypers({"lr": 0.01, "plasticity": 1000.0, "gamma": 0.5})


@pytest.mark.parametrize("name", SHIPPED)
def test_to_dict_round_trips_through_strict_json(name):
    spec = load_study(STUDIES / f"{name}.toml")
    text = json.dumps(spec.to_dict(), allow_nan=False)
    again = study_from_dict(json.loads(text))
    assert again == spec
    if spec.search.kind not in ("optuna", "frontier"):  # those two propose their points as they run
        assert again.points() == spec.points()


def test_to_dict_encodes_an_infinite_clip_as_a_string():
    spec = load_study(STUDIES / "keyrecall_optuna.toml")
    data = spec.to_dict()
    assert data["space"]["clip"]["values"][-1] == "inf"
    assert study_from_dict(data).space[-1].values[-1] == math.inf
    fixed = parse_study(study(fixed="[fixed]\nclip = inf\n"))
    assert fixed.to_dict()["fixed"] == {"clip": "inf"}
    assert study_from_dict(json.loads(json.dumps(fixed.to_dict(), allow_nan=False))) == fixed


def test_valid_variants():
    assert parse_study(study(search=CMAES, space=TWO_CONTINUOUS)).search.sampler == "cmaes"
    gp = parse_study(study(search='[search]\nkind = "optuna"\nsampler = "gp"\nconfigs = 4\n', objectives=TWO_OBJECTIVES))
    assert [o.direction for o in gp.objectives] == ["maximize", "minimize"]  # natural directions by default
    assert parse_study(study(search='[search]\nkind = "optuna"\nconfigs = 4\n')).search.sampler == "tpe"
    minimal = parse_study(study(execution=None, early_warning=None, fixed=None, model=None, train=None))
    assert minimal.execution.seeds == (0,) and minimal.configs_per_trial == 1 and not minimal.early_warning.enabled
    rnn = parse_study(study(model='[model]\nkind = "rnn"\nwidth = 16\n', train='[train]\nupdater = "bptt"\nbatches = 50\n',
                            fixed="[fixed]\nratio = 0.0\n"))
    assert rnn.hypers({"lr": 0.01, "plasticity": 100.0})[0].ratio == 0.0
    rnn_default = parse_study(study(model='[model]\nkind = "rnn"\nwidth = 16\n', fixed=None,
                                    train='[train]\nupdater = "bptt"\nbatches = 50\n'))
    assert rnn_default.hypers({"lr": 0.01, "plasticity": 100.0})[0].ratio == 0.0  # no ephemeral entries by default
    assert set(OBJECTIVE_METRICS.values()) == {"maximize", "minimize"}
    assert isinstance(minimal.space[0], Axis)


def test_import_is_light():
    code = "import sys, sweeper.study; print(sorted(m for m in ('torch', 'ray', 'optuna') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- malformed studies -------------------------------------------------------------------------

BAD = [
    # (case id, text, field named)
    ("not-toml", "name = \n", "toml"),
    ("empty", "", "file"),
    ("blank", "  \n\n# only a comment\n", "file"),
    ("missing-name", study(top=None), "name"),
    ("name-with-space", study(top='name = "has space"\n'), "name"),
    ("name-too-long", study(top=f'name = "{"a" * 65}"\n'), "name"),
    ("name-not-string", study(top="name = 3\n"), "name"),
    ("description-not-string", study(top='name = "t"\ndescription = 5\n'), "description"),
    ("unknown-top-key", study(top='name = "t"\nfoo = 1\n'), "foo"),
    ("missing-task", study(task=None), "task"),
    ("missing-space", study(space=None), "space"),
    ("missing-objectives", study(objectives=None), "objectives"),
    ("unknown-search-key", study(search='[search]\nkind = "random"\nconfigs = 4\nfoo = 1\n'), "search.foo"),
    ("unknown-axis-key", study(space="[space.lr]\nlow = 1e-3\nhigh = 1e-1\nstep = 2\n"), "space.lr.step"),
    ("unknown-execution-key", study(execution="[execution]\ngpu = 1\n"), "execution.gpu"),
    ("unknown-early-warning-key", study(early_warning="[early_warning]\nfoo = 1\n"), "early_warning.foo"),
    ("unknown-train-key", study(train="[train]\nbatchez = 5\n"), "train.batchez"),
    ("unknown-model-key", study(model="[model]\nwidht = 5\n"), "model.widht"),
    ("unknown-task-param", study(task='[task]\nname = "key_recall"\ngapmax = 3\n'), "task.gapmax"),
    ("unknown-task", study(task='[task]\nname = "nope"\n'), "task.name"),
    ("unknown-axis", study(space="[space.momentum]\nvalues = [0.9]\n"), "space.momentum"),
    ("duplicate-key", study(search='[search]\nkind = "random"\nconfigs = 4\nconfigs = 5\n'), "search.configs"),
    ("duplicate-table", study(model="[model]\nwidth = 16\n\n[model]\ndepth = 1\n"), "model"),
    ("string-for-number", study(search='[search]\nkind = "random"\nconfigs = "8"\n'), "search.configs"),
    ("float-for-int", study(search='[search]\nkind = "random"\nconfigs = 8.0\n'), "search.configs"),
    ("bool-for-number", study(space="[space.lr]\nlow = true\nhigh = 1e-1\n"), "space.lr.low"),
    ("list-for-table", study(top='name = "t"\nsearch = ["random"]\n', search=None), "search"),
    ("axis-not-a-table", study(space="[space]\nlr = 0.1\n"), "space.lr"),
    ("nan-bound", study(space="[space.lr]\nlow = nan\nhigh = 1e-1\n"), "space.lr.low"),
    ("inf-bound", study(space="[space.clip]\nlow = 1.0\nhigh = inf\n"), "space.clip.high"),
    ("low-above-high", study(space="[space.lr]\nlow = 1e-1\nhigh = 1e-3\n"), "space.lr.high"),
    ("low-equals-high", study(space="[space.lr]\nlow = 1e-2\nhigh = 1e-2\n"), "space.lr.high"),
    ("log-with-zero-low", study(space="[space.ratio]\nlow = 0.0\nhigh = 0.5\nlog = true\n"), "space.ratio.low"),
    ("log-not-bool", study(space='[space.lr]\nlow = 1e-3\nhigh = 1e-1\nlog = "yes"\n'), "space.lr.log"),
    ("lr-low-zero", study(space="[space.lr]\nlow = 0.0\nhigh = 1e-1\n"), "space.lr.low"),
    ("lr-high-too-big", study(space="[space.lr]\nlow = 1e-3\nhigh = 1e4\n"), "space.lr.high"),
    ("plasticity-below-one", study(space="[space.plasticity]\nlow = 0.5\nhigh = 10.0\n"), "space.plasticity.low"),
    ("ratio-above-one", study(space="[space.ratio]\nlow = 0.1\nhigh = 1.5\n"), "space.ratio.high"),
    ("gamma-zero", study(space="[space.gamma]\nlow = 0.0\nhigh = 0.9\n", fixed=None), "space.gamma.low"),
    ("clip-negative", study(space="[space.clip]\nvalues = [-1.0, 1.0]\n"), "space.clip.values[0]"),
    ("axis-also-fixed", study(fixed="[fixed]\nlr = 0.01\n"), "fixed.lr"),
    ("empty-space", study(space="[space]\n"), "space"),
    ("values-empty", study(space="[space.plasticity]\nvalues = []\n"), "space.plasticity.values"),
    ("values-scalar", study(space="[space.plasticity]\nvalues = 3.0\n"), "space.plasticity.values"),
    ("values-non-numeric", study(space='[space.plasticity]\nvalues = ["a"]\n'), "space.plasticity.values[0]"),
    ("values-duplicate", study(space="[space.plasticity]\nvalues = [1e2, 100.0]\n"), "space.plasticity.values"),
    ("values-and-low", study(space="[space.plasticity]\nvalues = [1e2]\nlow = 1.0\n"), "space.plasticity.low"),
    ("range-missing-high", study(space="[space.lr]\nlow = 1e-3\n"), "space.lr.high"),
    ("grid-without-num", study(search=GRID_SEARCH, space="[space.lr]\nlow = 1e-3\nhigh = 1e-1\n"), "space.lr.num"),
    ("grid-num-one", study(search=GRID_SEARCH, space="[space.lr]\nlow = 1e-3\nhigh = 1e-1\nnum = 1\n"), "space.lr.num"),
    ("num-with-random", study(space="[space.lr]\nlow = 1e-3\nhigh = 1e-1\nnum = 3\n"), "space.lr.num"),
    ("grid-too-large", study(search=GRID_SEARCH, space="[space.lr]\nlow = 1e-3\nhigh = 1e-1\nnum = 1000\n"
                             "[space.ratio]\nlow = 0.1\nhigh = 0.9\nnum = 1000\n"), "space"),
    ("grid-configs-mismatch", study(search='[search]\nkind = "grid"\nconfigs = 5\n', space=GRID_SPACE), "search.configs"),
    ("random-without-configs", study(search='[search]\nkind = "random"\n'), "search.configs"),
    ("configs-zero", study(search='[search]\nkind = "random"\nconfigs = 0\n'), "search.configs"),
    ("configs-too-many", study(search='[search]\nkind = "random"\nconfigs = 100001\n'), "search.configs"),
    ("too-many-members", study(search='[search]\nkind = "random"\nconfigs = 100000\n',
                               execution="[execution]\nseeds = 20\n"), "search.configs"),
    ("missing-kind", study(search="[search]\nconfigs = 4\n"), "search.kind"),
    ("unknown-kind", study(search='[search]\nkind = "bayes"\nconfigs = 4\n'), "search.kind"),
    ("sampler-without-optuna", study(search='[search]\nkind = "random"\nconfigs = 4\nsampler = "tpe"\n'), "search.sampler"),
    ("unknown-sampler", study(search='[search]\nkind = "optuna"\nconfigs = 4\nsampler = "hyperband"\n'), "search.sampler"),
    ("negative-search-seed", study(search='[search]\nkind = "random"\nconfigs = 4\nseed = -1\n'), "search.seed"),
    ("cmaes-two-objectives", study(search=CMAES, space=TWO_CONTINUOUS, objectives=TWO_OBJECTIVES), "search.sampler"),
    ("cmaes-categorical", study(search=CMAES), "space.plasticity.values"),
    ("cmaes-one-axis", study(search=CMAES, space="[space.lr]\nlow = 1e-3\nhigh = 1e-1\n"), "space"),
    ("unknown-metric", study(objectives='[[objectives]]\nmetric = "accuracy"\n'), "objectives[0].metric"),
    ("bad-direction", study(objectives='[[objectives]]\nmetric = "eval_mem_acc"\ndirection = "up"\n'),
     "objectives[0].direction"),
    ("duplicate-objective", study(objectives='[[objectives]]\nmetric = "mem_acc"\n[[objectives]]\nmetric = "mem_acc"\n'),
     "objectives[1].metric"),
    ("objectives-as-table", study(objectives='[objectives]\nmetric = "mem_acc"\n'), "objectives"),
    ("objective-without-metric", study(objectives='[[objectives]]\ndirection = "maximize"\n'), "objectives[0].metric"),
    ("eval-objective-without-eval", study(execution="[execution]\neval_batches = 0\n"), "execution.eval_batches"),
    ("rnn-nonzero-ratio", study(model='[model]\nkind = "rnn"\nwidth = 16\n', train='[train]\nupdater = "bptt"\n',
                                fixed="[fixed]\nratio = 0.1\n"), "fixed.ratio"),
    ("rnn-ratio-axis", study(model='[model]\nkind = "rnn"\nwidth = 16\n', train='[train]\nupdater = "bptt"\n',
                             space="[space.ratio]\nvalues = [0.0, 0.1]\n"), "space.ratio"),
    ("ephemeral-with-adam", study(train='[train]\noptimizer = "adam"\n'), "train.optimizer"),
    ("train-batches-zero", study(train="[train]\nbatches = 0\n"), "train.batches"),
    ("fixed-seed", study(fixed="[fixed]\nseed = 3\n"), "fixed.seed"),
    ("space-seed", study(space="[space.seed]\nvalues = [1, 2]\n"), "space.seed"),
    ("fixed-unknown", study(fixed="[fixed]\nmomentum = 0.9\n"), "fixed.momentum"),
    ("fixed-out-of-range", study(fixed="[fixed]\ngamma = 2.0\n"), "fixed.gamma"),
    ("seeds-empty", study(execution="[execution]\nseeds = []\n"), "execution.seeds"),
    ("seeds-negative", study(execution="[execution]\nseeds = [-1]\n"), "execution.seeds[0]"),
    ("seeds-duplicate", study(execution="[execution]\nseeds = [1, 1]\nmembers_per_trial = 2\n"), "execution.seeds"),
    ("seeds-zero-count", study(execution="[execution]\nseeds = 0\n"), "execution.seeds"),
    ("members-not-multiple", study(execution="[execution]\nseeds = 2\nmembers_per_trial = 3\n"),
     "execution.members_per_trial"),
    ("cpus-zero", study(execution="[execution]\ncpus = 0\n"), "execution.cpus"),
    ("cpus-too-many", study(execution="[execution]\ncpus = 2000\n"), "execution.cpus"),
    ("gpus-negative", study(execution="[execution]\ngpus = -1\n"), "execution.gpus"),
    ("gpus-too-many", study(execution="[execution]\ngpus = 100\n"), "execution.gpus"),
    ("gpus-on-cpu-device", study(execution="[execution]\ngpus = 1\n"), "execution.gpus"),
    ("cuda-without-gpus", study(train='[train]\ndevice = "cuda"\n'), "execution.gpus"),
    ("max-failures-below", study(execution="[execution]\nmax_failures = -2\n"), "execution.max_failures"),
    ("max-failures-above", study(execution="[execution]\nmax_failures = 101\n"), "execution.max_failures"),
    ("report-every-zero", study(execution="[execution]\nreport_every = 0\n"), "execution.report_every"),
    ("pack-does-not-fit", study(model="[model]\nwidth = 65536\ndepth = 16\n"), "execution.members_per_trial"),
    ("shadow-above-one", study(early_warning="[early_warning]\nshadow_fraction = 1.5\n"), "early_warning.shadow_fraction"),
    ("shadow-negative", study(early_warning="[early_warning]\nshadow_fraction = -0.1\n"), "early_warning.shadow_fraction"),
    ("min-step-past-budget", study(early_warning="[early_warning]\nenabled = true\nmin_step = 50\n"),
     "early_warning.min_step"),
    ("bad-predictor-name", study(early_warning='[early_warning]\npredictor = "no spaces!"\n'), "early_warning.predictor"),
    ("enabled-not-bool", study(early_warning='[early_warning]\nenabled = "yes"\n'), "early_warning.enabled"),
    ("params-nested", study(early_warning="[early_warning.params]\nx = [1, 2]\n"), "early_warning.params.x"),
]

# A small valid study of each fast-weight family (docs/families.md), as chunks for `study(**chunks)`.
FW = {
    "model": '[model]\nkind = "fastweights"\nhidden = 8\n',
    "train": '[train]\nbatches = 50\noptimizer = "adam"\n',
    "space": "[space.lr]\nlow = 1e-3\nhigh = 1e-1\nlog = true\n\n[space.eta]\nvalues = [0.1, 0.5]\n",
    "fixed": "[fixed]\nlambda = 0.9\n",
}
FWP = {
    "model": '[model]\nkind = "fwp"\nd_model = 8\nd_key = 4\nd_value = 4\nrule = "delta"\nphi = "silu_l2"\n',
    "train": '[train]\nbatches = 50\noptimizer = "adam"\n',
    "space": "[space.lr]\nlow = 1e-3\nhigh = 1e-1\nlog = true\n\n[space.beta_scale]\nlow = 0.5\nhigh = 2.0\n",
    "fixed": "[fixed]\nclip = 1.0\n",
}
FW_MODEL, FWP_MODEL = FW["model"], FWP["model"]
BAD += [
    ("fw-plasticity-axis", study(**{**FW, "space": "[space.plasticity]\nvalues = [1e2]\n"}), "space.plasticity"),
    ("fw-beta-scale-axis", study(**{**FW, "space": "[space.beta_scale]\nvalues = [1.0]\n"}), "space.beta_scale"),
    ("fwp-eta-fixed", study(**{**FWP, "fixed": "[fixed]\neta = 0.5\n"}), "fixed.eta"),
    ("fwp-plasticity-axis", study(**{**FWP, "space": "[space.plasticity]\nvalues = [1e2]\n"}),
     "space.plasticity"),
    ("ephemeral-eta-axis", study(space="[space.eta]\nvalues = [0.5]\n"), "space.eta"),
    ("fw-phi-option", study(**{**FW, "model": FW_MODEL + 'phi = "identity"\n'}), "model.phi"),
    ("fw-width-option", study(**{**FW, "model": '[model]\nkind = "fastweights"\nwidth = 8\n'}), "model.width"),
    ("fwp-activation-option", study(**{**FWP, "model": FWP_MODEL + 'activation = "tanh"\n'}), "model.activation"),
    ("fwp-unknown-phi", study(**{**FWP, "model": FWP_MODEL.replace("silu_l2", "softmax")}), "model.phi"),
    ("fwp-delta-with-decay", study(**{**FWP, "model": FWP_MODEL + 'decay = "constant"\n'}), "model.decay"),
    ("fw-lambda-above-one", study(**{**FW, "fixed": "[fixed]\nlambda = 1.5\n"}), "fixed.lambda"),
    ("fw-lambda-zero", study(**{**FW, "fixed": None, "space": "[space.lambda]\nvalues = [0.0, 0.5]\n"}),
     "space.lambda.values[0]"),
    ("fw-eta-negative", study(**{**FW, "space": "[space.eta]\nlow = -1.0\nhigh = 1.0\n"}), "space.eta.low"),
    ("fw-eta-negative-fixed", study(**{**FW, "fixed": "[fixed]\neta = -0.5\n", "space": "[space.lr]\nvalues = [1e-2]\n"}),
     "fixed.eta"),
    ("fwp-lambda-without-decay", study(**{**FWP, "fixed": "[fixed]\nlambda = 0.9\n"}), "fixed.lambda"),
    ("fwp-learned-decay-lambda-one", study(**{**FWP, "model": FWP_MODEL.replace('"delta"', '"gated_delta"')
                                                   + 'decay = "learned"\n'}), "fixed.lambda"),
    ("fw-updater-dfa", study(**{**FW, "train": '[train]\nbatches = 50\nupdater = "dfa"\n'}), "train.updater"),
    ("fw-optimizer", study(**{**FW, "train": '[train]\nbatches = 50\noptimizer = "rmsprop"\n'}), "train.optimizer"),
    ("fw-grad-clip", study(**{**FW, "train": "[train]\nbatches = 50\ngrad_clip = 1.0\n"}), "train.grad_clip"),
    ("fw-transition-bound", study(**{**FW, "early_warning": '[early_warning]\nenabled = true\n'
                                                              'predictor = "transition_bound"\n'}),
     "early_warning.predictor"),
    ("fw-frontier-without-its-plane", study(**{**FW, "search": '[search]\nkind = "frontier"\nconfigs = 4\n',
                                               "space": "[space.lr]\nlow = 1e-3\nhigh = 1e-1\nlog = true\n"}), "space"),
    ("fwp-plane-of-another-model", study(**{**FWP, "search": '[search]\nkind = "optuna"\nconfigs = 4\n'
                                                            'plane = ["lr", "plasticity"]\n'}), "search.plane"),
    ("fw-pack-does-not-fit", study(**{**FW, "model": '[model]\nkind = "fastweights"\nhidden = 65536\n'}),
     "execution.members_per_trial"),
]


def test_enough_distinct_malformed_cases():
    assert len(BAD) >= 45
    assert len({text for _, text, _ in BAD}) == len(BAD)
    assert len({case for case, _, _ in BAD}) == len(BAD)


@pytest.mark.parametrize("text, field", [(t, f) for _, t, f in BAD], ids=[c for c, _, _ in BAD])
def test_malformed_study_is_refused_naming_file_and_field(text, field):
    with pytest.raises(StudyError) as err:
        parse_study(text, "studies/bad.toml")
    exc = err.value
    assert isinstance(exc, ConfigError)
    assert (exc.path, exc.field) == ("studies/bad.toml", field)
    assert str(exc).startswith(f"studies/bad.toml: {field}: "), str(exc)
    assert len(str(exc)) > len(f"studies/bad.toml: {field}: ") + 10  # says what is wrong


@pytest.mark.parametrize("family, chunks", [("fastweights", FW), ("fwp", FWP)])
def test_family_study_points_members_and_round_trip(family, chunks):
    from sweeper.engine.families.config import FamilyRun, FastWeightsHyper, FWPHyper

    spec = parse_study(study(**chunks), "f.toml")
    assert spec.kind == family and spec.is_family and isinstance(spec.run, FamilyRun)
    assert spec.run.train.updater == "bptt" and spec.run.train.optimizer == "adam"
    second = "eta" if family == "fastweights" else "beta_scale"
    assert [a.name for a in spec.space] == ["lr", second]
    points = spec.points()
    assert len(points) == 4 and all(set(p) == {"lr", second} for p in points)
    members = spec.hypers(points[0])
    cls = FastWeightsHyper if family == "fastweights" else FWPHyper
    assert [type(h) for h in members] == [cls, cls] and [h.seed for h in members] == [0, 1]
    assert getattr(members[0], second) == points[0][second]
    if family == "fastweights":
        assert members[0].lam == 0.9  # [fixed] lambda is the field lam
    else:
        assert (members[0].lam, members[0].clip) == (1.0, 1.0)
    again = study_from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again.kind == family and again.space == spec.space and again.fixed == spec.fixed


def test_family_axes_are_the_hyper_classes_fields():
    from sweeper.study import FAMILY_AXES, axes_of

    assert FAMILY_AXES == {"fastweights": ("lr", "eta", "lambda", "clip"), "fwp": ("lr", "beta_scale", "lambda", "clip")}
    assert axes_of("ephemeral") == axes_of("rnn") == HYPER_AXES


def test_family_refusals_name_the_family_and_its_axes():
    with pytest.raises(StudyError, match=r"space.plasticity: not an axis of model fwp .*lr, beta_scale, lambda, clip"):
        parse_study(study(**{**FWP, "space": "[space.plasticity]\nvalues = [1e2]\n"}))
    with pytest.raises(StudyError, match=r"model.phi: an option of model fwp, not of fastweights"):
        parse_study(study(**{**FW, "model": FW_MODEL + 'phi = "identity"\n'}))


def test_duplicate_key_error_gives_the_line():
    with pytest.raises(StudyError, match="line 6"):
        parse_study('name = "t"\n[space.lr]\nlow = 1e-3\nhigh = 1e-1\nlog = true\nlow = 2e-3\n')


def test_memory_check_uses_the_given_budget():
    assert parse_study(study(), budget_bytes=1 << 40)
    with pytest.raises(StudyError) as err:
        parse_study(study(), budget_bytes=1000)
    assert err.value.field == "execution.members_per_trial" and "GiB" in str(err.value)
    # a stored study rebuilds on a smaller machine unless a budget is asked for
    big = parse_study(study(), budget_bytes=1 << 40).to_dict()
    assert study_from_dict(big).name == "t"
    with pytest.raises(StudyError):
        study_from_dict(big, budget_bytes=1000)


def test_file_level_errors(tmp_path):
    bad_utf8 = tmp_path / "latin1.toml"
    bad_utf8.write_bytes(study().replace('"t"', '"caf\xe9"').encode("latin-1"))
    huge = tmp_path / "huge.toml"
    huge.write_text(study() + "#" * (1 << 20) + "\n")
    for path in (bad_utf8, huge, tmp_path / "missing.toml", tmp_path):
        with pytest.raises(StudyError) as err:
            load_study(path)
        assert (err.value.path, err.value.field) == (str(path), "file")
        assert str(err.value).startswith(f"{path}: file: ")
    with pytest.raises(StudyError) as err:
        parse_study("#" * ((1 << 20) + 1))
    assert err.value.field == "file" and err.value.path == "<study>"
    good = tmp_path / "good.toml"
    good.write_text(study())
    assert load_study(good).path == str(good)


# --- the plane: [search] plane ------------------------------------------------------------------


def _search(kind: str = "optuna", extra: str = "") -> str:
    return f'[search]\nkind = "{kind}"\nconfigs = 4\n{extra}'


@pytest.mark.parametrize("chunks, plane", [({}, ("lr", "plasticity")), (FW, ("lr", "eta")), (FWP, ("lr", "beta_scale"))])
def test_default_plane_is_the_models(chunks, plane):
    from sweeper.study.spec import DEFAULT_PLANES

    spec = parse_study(study(**chunks))
    assert spec.plane == plane == DEFAULT_PLANES[spec.kind] and spec.search.plane is None
    assert "plane" not in spec.to_dict()["search"]  # a study that names none stores none (its spec is unchanged)


def test_a_named_plane_is_kept_and_round_trips():
    space = FWP["space"] + "\n[space.lambda]\nvalues = [0.9, 0.99]\n"
    model = FWP_MODEL.replace('"delta"', '"gated_delta"') + 'decay = "constant"\n'
    spec = parse_study(study(**{**FWP, "model": model, "space": space, "search": _search(extra='plane = ["lambda", "lr"]\n')}))
    assert spec.plane == spec.search.plane == ("lambda", "lr")
    stored = json.loads(json.dumps(spec.to_dict()))
    assert stored["search"]["plane"] == ["lambda", "lr"]
    assert study_from_dict(stored).plane == ("lambda", "lr")


def test_family_frontier_and_boundary_fit_parse():
    frontier = parse_study(study(**{**FW, "search": _search("frontier")}))
    assert (frontier.search.kind, frontier.plane) == ("frontier", ("lr", "eta"))
    filtered = parse_study(study(**{**FWP, "search": _search(extra='boundary_fit = "self"\n')}))
    assert filtered.search.boundary_fit == "self" and filtered.plane == ("lr", "beta_scale")
    lam = FW["space"] + "\n[space.lambda]\nlow = 0.5\nhigh = 0.99\n"
    chosen = parse_study(study(**{**FW, "fixed": None, "space": lam,
                                  "search": _search("frontier", 'plane = ["lr", "lambda"]\n')}))
    assert chosen.plane == ("lr", "lambda")


PLANE_REFUSALS = [
    ("not-a-list", {}, 'plane = "lr"', ["got 'lr'; expected two axes (x, y), e.g. plane = [\"lr\", \"plasticity\"]"]),
    ("one-axis", {}, 'plane = ["lr"]', ["expected two axes"]),
    ("three-axes", {}, 'plane = ["lr", "plasticity", "gamma"]', ["expected two axes"]),
    ("not-strings", {}, "plane = [1, 2]", ["expected two axes"]),
    ("unknown-axis", {}, 'plane = ["lr", "momentum"]',
     ["'momentum' is not an axis of model ephemeral; the axes of model ephemeral: lr, plasticity, ratio, gamma, clip"]),
    ("twice", {}, 'plane = ["lr", "lr"]', ["names lr twice; expected two distinct axes"]),
    ("fixed-axis", {}, 'plane = ["lr", "gamma"]', ["gamma does not vary in [space]", "(varying here: lr, plasticity)"]),
    ("another-models-axis", FWP, 'plane = ["lr", "plasticity"]',
     ["'plasticity' is not an axis of model fwp; the axes of model fwp: lr, beta_scale, lambda, clip"]),
    ("seed", FW, 'plane = ["lr", "seed"]', ["'seed' is not an axis of model fastweights"]),
    ("default-of-another-model", FW, 'plane = ["lr", "beta_scale"]', ["the axes of model fastweights: lr, eta, lambda, clip"]),
]


@pytest.mark.parametrize("chunks, line, parts", [c[1:] for c in PLANE_REFUSALS], ids=[c[0] for c in PLANE_REFUSALS])
def test_bad_planes_are_refused_naming_the_field_and_the_allowed_axes(chunks, line, parts):
    with pytest.raises(StudyError) as err:
        parse_study(study(**{**chunks, "search": _search(extra=line + "\n")}), "p.toml")
    assert err.value.field == "search.plane" and str(err.value).startswith("p.toml: search.plane: ")
    for part in parts:
        assert part in str(err.value), str(err.value)


def test_a_plane_axis_with_a_single_value_is_refused():
    single = "[space.lr]\nlow = 1e-3\nhigh = 1e-1\nlog = true\n\n[space.plasticity]\nvalues = [1e2]\n"
    with pytest.raises(StudyError, match=r"search.plane: plasticity does not vary in \[space\]"):
        parse_study(study(space=single, search=_search(extra='plane = ["lr", "plasticity"]\n')))


def test_a_frontier_needs_its_plane_in_the_space():
    with pytest.raises(StudyError, match=r"space: a frontier search maps the boundary in the study's \(lr, beta_scale\) "
                                         r"plane: search both \[space.lr\] and \[space.beta_scale\]"):
        parse_study(study(**{**FWP, "search": _search("frontier"), "space": "[space.lr]\nlow = 1e-3\nhigh = 1e-1\n"}))
