"""The population engine against the plain reference loop, member by member."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sweeper.config import ConfigError, Hyper, ModelConfig, RunConfig, TrainConfig
from sweeper.engine import ell
from sweeper.engine.population import Population
from sweeper.engine.reference import Reference, explosion
from sweeper.outcomes import Outcome
from sweeper.tasks import make_task

TASK = make_task("key_recall", gap_min=1, gap_max=2)
COMPARED = ("loss", "acc", "mem_acc", "grad_eph", "grad_slow", "w_eph", "w_slow", "max_logit")

# (model kind, updater, recurrence, optimizer, grad_clip)
PAIRS = [
    ("ephemeral", "dfa", False, "sgd", None),
    ("ephemeral", "dfa_nod", False, "sgd", None),
    ("ephemeral", "dfa", True, "sgd", None),
    ("ephemeral", "backprop", False, "sgd", None),
    ("ephemeral", "backprop", True, "sgd", None),
    ("ephemeral", "bptt", False, "sgd", None),
    ("ephemeral", "bptt", True, "sgd", None),
    ("rnn", "dfa", True, "sgd", None),
    ("rnn", "backprop", True, "sgd", None),
    ("rnn", "backprop", False, "adam", 1.0),
    ("rnn", "bptt", True, "sgd", None),
    ("rnn", "bptt", True, "adam", 1.0),
]


def make_run(kind, updater, recurrence, optimizer="sgd", grad_clip=None, batches=100, width=12, batch_size=2,
             **train):
    return RunConfig(
        task=TASK,
        model=ModelConfig(kind=kind, depth=2, width=width, recurrence=recurrence),
        train=TrainConfig(updater=updater, optimizer=optimizer, grad_clip=grad_clip, batch_size=batch_size,
                          batches=batches, metrics_every=1, stop_on_explosion=False, **train),
    )


def stable_members(kind, clip, n=3):
    """Members with different hyperparameters, in a regime that does not explode."""
    if kind == "rnn":
        return [Hyper(lr=lr, ratio=0.0, clip=clip, seed=s) for lr, s in ((3e-3, 0), (1e-2, 1), (5e-3, 2))][:n]
    return [
        Hyper(lr=3e-3, plasticity=300, ratio=0.1, gamma=0.7, clip=clip, seed=0),
        Hyper(lr=1e-2, plasticity=100, ratio=0.2, gamma=0.5, clip=clip, seed=1),
        Hyper(lr=5e-3, plasticity=30, ratio=0.15, gamma=0.9, clip=clip, seed=2),
    ][:n]


def assert_close(engine_value, reference_value, what):
    if math.isnan(reference_value):
        assert math.isnan(engine_value), what
        return
    assert engine_value == pytest.approx(reference_value, rel=1e-5, abs=1e-7), what


@pytest.mark.slow
@pytest.mark.parametrize("clip", [math.inf, 0.15], ids=["noclip", "clip"])
@pytest.mark.parametrize("kind,updater,recurrence,optimizer,grad_clip", PAIRS,
                         ids=["-".join(str(x) for x in p[:4]) for p in PAIRS])
def test_engine_matches_reference(kind, updater, recurrence, optimizer, grad_clip, clip):
    # Adam divides by sqrt(v): a coordinate whose gradient is at float32 rounding level still moves by
    # about lr, so float32 rounding differences (summation order) grow into weight differences above
    # 1e-5 over 100 batches. In float64 both sides agree far below the tolerance, which is what
    # shows the two implement the same optimizer.
    dtype = {"dtype": "float64"} if optimizer == "adam" else {}
    run = make_run(kind, updater, recurrence, optimizer, grad_clip, **dtype)
    members = stable_members(kind, clip, n=2)
    pop = Population(run, members)
    refs = [Reference(run, h) for h in members]
    clip_hit = False
    for step in range(run.train.batches):
        m = pop.step()
        assert not m.exploded.any(), f"batch {step}: a member exploded; the comparison needs a stable regime"
        for p, ref in enumerate(refs):
            expected = ref.train_batch()
            got = m.for_member(p)
            for name in COMPARED:
                assert_close(got[name], expected[name], f"batch {step}, member {p}, {name}")
            if math.isfinite(clip):
                clip_hit |= any(bool((w.abs() >= clip * (1 - 1e-6)).any()) for w in ref.W)
    for p, ref in enumerate(refs):  # the weights themselves, at the end
        for l in range(run.model.depth):
            torch.testing.assert_close(pop.S[l][p].double(), ref.W[l].double(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(pop.W_out[p].double(), ref.W_out.double(), rtol=1e-5, atol=1e-6)
    if math.isfinite(clip):
        assert clip_hit, "the clip threshold never bound, so clipping was not tested"


CUDA_PAIRS = [p for p in PAIRS if p[:3] in {("ephemeral", "dfa", False), ("ephemeral", "backprop", True),
                                              ("ephemeral", "bptt", True), ("rnn", "bptt", True)}]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("kind,updater,recurrence,optimizer,grad_clip", CUDA_PAIRS,
                         ids=["-".join(str(x) for x in p[:4]) for p in CUDA_PAIRS])
def test_cuda_engine_matches_cpu_reference(kind, updater, recurrence, optimizer, grad_clip):
    """The same engine code on a GPU, float64, against the reference on the CPU (the GPU check runs it)."""
    batches = 25
    run = make_run(kind, updater, recurrence, optimizer, grad_clip, batches=batches, dtype="float64", device="cuda")
    members = stable_members(kind, 0.15, n=2)
    pop = Population(run, members)
    assert pop.S[0].is_cuda
    refs = [Reference(make_run(kind, updater, recurrence, optimizer, grad_clip, batches=batches, dtype="float64"), h)
            for h in members]
    for step in range(batches):
        m = pop.step()
        for p, ref in enumerate(refs):
            expected, got = ref.train_batch(), m.for_member(p)
            for name in COMPARED:
                assert_close(got[name], expected[name], f"batch {step}, member {p}, {name}")
    for p, ref in enumerate(refs):
        for l in range(run.model.depth):
            torch.testing.assert_close(pop.S[l][p].cpu().double(), ref.W[l].double(), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("updater,recurrence", [("dfa", False), ("backprop", True), ("bptt", True)])
def test_engine_matches_reference_when_state_carries_over_sequences(updater, recurrence):
    """With a reset every 3 sequences, E is nonzero at the start of the second and third sequence; the
    engine skips the ephemeral products only while E is exactly 0 (right after a reset), and BPTT's
    end-of-sequence step then acts on the next sequences."""
    run = make_run("ephemeral", updater, recurrence, batches=30, reset_every=3)
    members = stable_members("ephemeral", math.inf, n=2)
    pop = Population(run, members)
    refs = [Reference(run, h) for h in members]
    skipped = []
    for step in range(run.train.batches):
        skipped.append(pop.E_zero)  # True only at the start of a batch that follows a reset
        m = pop.step()
        for p, ref in enumerate(refs):
            expected = ref.train_batch()
            for name in COMPARED:
                assert_close(m.for_member(p)[name], expected[name], f"batch {step}, member {p}, {name}")
    assert not any(skipped[1::3]) and not any(skipped[2::3])  # E carried over: its products ran
    assert pop.E_zero is False and any(bool(E.abs().max() > 0) for E in pop.E)


EXPLODING = Hyper(lr=0.2, plasticity=1e4, ratio=0.2, gamma=1.0, seed=3)


def test_exploding_member_matches_reference_at_first():
    """An exploding configuration amplifies rounding, so only its first steps are compared."""
    run = make_run("ephemeral", "backprop", False, batches=30, explode_grace=5)
    pop, ref = Population(run, [EXPLODING]), Reference(run, EXPLODING)
    rows = []
    for step in range(2):
        got, expected = pop.step().for_member(0), ref.train_batch()
        rows.append(got)
        for name in COMPARED:
            assert_close(got[name], expected[name], f"batch {step} {name}")
    rows += [m.for_member(0) for m in pop.run()]
    assert pop.explode_step[0] is not None, "this configuration should blow up"
    # detection and onset: the rule of docs/engine.md, as the reference reads the member's losses
    assert (pop.explode_step[0], pop.explode_onset[0]) == explosion([r["loss"] for r in rows],
                                                                    [r["max_logit"] for r in rows], run.train)
    assert pop.summaries()[0].final_step == pop.explode_step[0]


def test_dropping_members_leaves_the_others_unchanged():
    run = make_run("ephemeral", "dfa", False, batches=12)
    members = stable_members("ephemeral", math.inf)
    pop = Population(run, members)
    refs = {0: Reference(run, members[0]), 2: Reference(run, members[2])}
    counts = pop.layout[1].counts.tolist()  # masked entries of each member in layer 1
    for step in range(12):
        if step == 4:
            pop.drop([1])
            # the work shrank: only the remaining members' entries are stored
            assert pop.alive == [0, 2] and pop.E[1].shape == (counts[0] + counts[2], run.train.batch_size)
        m = pop.step()
        for p, ref in refs.items():
            expected = ref.train_batch()
            for name in COMPARED:
                assert_close(m.for_member(p)[name], expected[name], f"batch {step} member {p} {name}")
    assert pop.outcome[1] == Outcome.STOPPED_EARLY
    assert pop.outcome[0] == pop.outcome[2] == Outcome.STABLE
    assert pop.steps_done == [12, 4, 12]


def test_deterministic_for_a_seed():
    run = make_run("ephemeral", "dfa", False, batches=5)
    members = stable_members("ephemeral", math.inf)
    a = [m.loss for m in Population(run, members).run()]
    b = [m.loss for m in Population(run, members).run()]
    np.testing.assert_array_equal(np.array(a), np.array(b))


def test_explosion_is_flagged_and_the_member_dropped():
    run = make_run("ephemeral", "backprop", False, batches=60, explode_grace=5)
    run = RunConfig(task=run.task, model=run.model,
                    train=TrainConfig(**{**run.train.__dict__, "stop_on_explosion": True}))
    members = [Hyper(lr=3e-3, plasticity=300, seed=0), EXPLODING]
    pop = Population(run, members)
    for _ in pop.run():
        pass
    assert pop.outcome[1] == Outcome.EXPLODED and pop.explode_step[1] is not None
    assert pop.outcome[0] == Outcome.STABLE and pop.explode_step[0] is None
    assert pop.steps_done[1] == pop.explode_step[1] + 1 < 60
    assert 0 <= pop.explode_onset[1] <= pop.explode_step[1] and pop.explode_onset[0] is None


def test_state_holds_only_masked_entries():
    run = make_run("ephemeral", "dfa", False, width=64, batches=1)
    h = Hyper(lr=1e-3, ratio=0.1, seed=0)
    pop = Population(run, [h, Hyper(lr=1e-3, ratio=0.1, seed=1)])
    for l, E in enumerate(pop.E):
        n_out, n_in = pop.S[l].shape[1:]
        assert E.shape == (2 * round(0.1 * n_out * n_in), run.train.batch_size)  # (entries of both members, B)


def test_evaluate_without_ephemeral_entries_changes_nothing_stored():
    run = make_run("ephemeral", "dfa", False, batches=3)
    pop = Population(run, stable_members("ephemeral", math.inf))
    for _ in pop.run():
        pass
    before = [E.clone() for E in pop.E]
    on, off = pop.evaluate(2), pop.evaluate(2, ephemeral=False)
    assert set(on) == {"member", "loss", "acc", "mem_acc"} and len(off["acc"]) == 3
    for a, b in zip(before, pop.E):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "field,kwargs",
    [
        ("lr", {"lr": 0.0}),
        ("lr", {"lr": -1e-3}),
        ("lr", {"lr": float("nan")}),
        ("plasticity", {"plasticity": 0.5}),
        ("gamma", {"gamma": 0.0}),
        ("gamma", {"gamma": 1.5}),
        ("ratio", {"ratio": -0.1}),
        ("ratio", {"ratio": 1.1}),
        ("clip", {"clip": 0.0}),
        ("lr", {"lr": True}),
    ],
)
def test_bad_hyperparameters_are_refused_by_name(field, kwargs):
    with pytest.raises(ConfigError) as err:
        Hyper(**kwargs)
    assert err.value.field == field


@pytest.mark.parametrize(
    "make,field",
    [
        (lambda: make_task("nonsense"), "task.name"),
        (lambda: ModelConfig(kind="transformer"), "model.kind"),
        (lambda: TrainConfig(updater="hebbian"), "train.updater"),
        (lambda: ModelConfig(width=0), "model.width"),
        (lambda: TrainConfig(batch_size=0), "train.batch_size"),
        (lambda: RunConfig(task=TASK, train=TrainConfig(optimizer="adam")), "train.optimizer"),
        (lambda: Population(make_run("rnn", "bptt", True), [Hyper(ratio=0.1)]), "members[0].ratio"),
        (lambda: Population(make_run("ephemeral", "dfa", False), []), "members"),
    ],
)
def test_bad_config_is_refused_by_name(make, field):
    with pytest.raises(ConfigError) as err:
        make()
    assert err.value.field == field


def test_a_population_that_cannot_fit_is_refused_before_allocating():
    run = RunConfig(task=TASK, model=ModelConfig(width=60_000), train=TrainConfig(batch_size=4096))
    with pytest.raises(ConfigError) as err:
        Population(run, [Hyper()] * 64)
    assert err.value.field == "population" and "GiB" in str(err.value)


@pytest.mark.parametrize("reset_every", [1, 2])
@pytest.mark.parametrize("ephemeral", [True, False])
def test_evaluate_matches_reference(reset_every, ephemeral):
    run = make_run("ephemeral", "dfa", False, batches=6, reset_every=reset_every)
    members = stable_members("ephemeral", math.inf, n=2)
    pop, refs = Population(run, members), [Reference(run, h) for h in members]
    for _ in pop.run():
        pass
    for ref in refs:
        for _ in range(6):
            ref.train_batch()
    got = pop.evaluate(3, ephemeral=ephemeral)
    for p, ref in enumerate(refs):
        expected = ref.evaluate(3, ephemeral=ephemeral)
        for name in ("loss", "acc", "mem_acc"):
            assert_close(float(got[name][p]), expected[name], f"member {p} {name}")


def test_bptt_evaluate_matches_reference_when_state_carries_over():
    """BPTT takes its end-of-sequence ephemeral step during evaluation too (it shows when reset_every > 1)."""
    run = make_run("ephemeral", "bptt", True, batches=3, reset_every=2)
    members = stable_members("ephemeral", 0.15, n=2)
    pop, refs = Population(run, members), [Reference(run, h) for h in members]
    for _ in pop.run():
        pass
    for ref in refs:
        for _ in range(3):
            ref.train_batch()
    got = pop.evaluate(4)
    for p, ref in enumerate(refs):
        expected = ref.evaluate(4)
        for name in ("loss", "acc", "mem_acc"):
            assert_close(float(got[name][p]), expected[name], f"member {p} {name}")


TORCH_PAIRS = [("dfa", False, math.inf), ("backprop", True, 0.15), ("bptt", True, math.inf), ("bptt", False, 0.15)]


@pytest.mark.parametrize("updater,recurrence,clip", TORCH_PAIRS, ids=["-".join(map(str, p)) for p in TORCH_PAIRS])
def test_torch_backend_matches_reference(monkeypatch, updater, recurrence, clip):
    """The pure-torch sparse operations (no C compiler, or a GPU) against the oracle."""
    monkeypatch.setattr(ell, "_native", lambda: None)
    run = make_run("ephemeral", updater, recurrence, batches=20)
    members = stable_members("ephemeral", clip, n=2)
    pop, refs = Population(run, members), [Reference(run, h) for h in members]
    assert all(lay.backend == "torch" for lay in pop.layout)
    for step in range(run.train.batches):
        m = pop.step()
        for p, ref in enumerate(refs):
            expected = ref.train_batch()
            for name in COMPARED:
                assert_close(m.for_member(p)[name], expected[name], f"batch {step}, member {p}, {name}")


@pytest.mark.skipif(ell._native() is None, reason="no C compiler: the native kernels are not built")
@pytest.mark.parametrize("updater,recurrence", [("dfa", False), ("backprop", True), ("bptt", True)])
def test_native_and_torch_backends_agree_on_a_wider_network(monkeypatch, updater, recurrence):
    """Rows of many entries, several SIMD blocks of sequences plus a remainder (B = 19), float64."""
    run = RunConfig(task=TASK, model=ModelConfig(depth=2, width=48, recurrence=recurrence),
                    train=TrainConfig(updater=updater, batch_size=19, batches=3, metrics_every=1,
                                      stop_on_explosion=False, dtype="float64"))
    members = [Hyper(lr=3e-3, plasticity=300, ratio=0.3, gamma=0.7, clip=0.2, seed=s) for s in range(2)]
    native = Population(run, members)
    assert all(lay.backend == "native" for lay in native.layout)
    monkeypatch.setattr(ell, "_native", lambda: None)
    plain = Population(run, members)
    for _ in range(3):
        a, b = native.step(), plain.step()
        for name in COMPARED:
            np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-10, err_msg=name)
    for Ea, Eb in zip(native.E, plain.E):
        torch.testing.assert_close(Ea, Eb, rtol=1e-10, atol=1e-12)


# (updater, recurrence, clip, reset_every). backprop with recurrence runs every kernel each character
# (forward product, backward product, step, mask product of the gradient norm); BPTT steps once per
# sequence over all characters at once, with E carried over to the next sequence (so its forward and
# backward products run too) and a clip small enough to bind on E.
TAIL_CASES = [("backprop", True, math.inf, 1), ("bptt", True, 0.06, 2)]
# float32: a SIMD block is 8 numbers, the forward product takes 4 blocks at once: B = 1 and 7 are tails
# only, 8 one block, 9 a block and a tail, 33 four blocks and a tail, 41 all three loops.
# B = 41 alone reaches every loop, so it runs in the fast lane; the rest isolate each loop (slow lane).
TAIL_BATCHES = [pytest.param(b, marks=pytest.mark.slow) for b in (1, 7, 8, 9, 33)] + [41]


@pytest.mark.parametrize("backend", ["native", "torch"])
@pytest.mark.parametrize("batch_size", TAIL_BATCHES)
@pytest.mark.parametrize("updater,recurrence,clip,reset_every", TAIL_CASES,
                         ids=["-".join(map(str, p)) for p in TAIL_CASES])
def test_float32_engine_matches_reference_at_every_simd_tail(monkeypatch, updater, recurrence, clip, reset_every,
                                                             batch_size, backend):
    """float32 at batch sizes that end in every remainder of the vector loops, on both backends: every
    metric of every batch, and at the end the slow weights and each sequence's ephemeral entries."""
    if backend == "torch":
        monkeypatch.setattr(ell, "_native", lambda: None)
    elif ell._native() is None:
        pytest.skip("no C compiler: the native kernels are not built")
    run = make_run("ephemeral", updater, recurrence, batches=20, width=10, batch_size=batch_size,
                   reset_every=reset_every)
    assert run.train.dtype == "float32"
    members = stable_members("ephemeral", clip, n=2)
    pop, refs = Population(run, members), [Reference(run, h) for h in members]
    assert all(lay.backend == backend for lay in pop.layout)
    clip_hit = [False, False]  # some ephemeral entry at -clip, at +clip
    for step in range(run.train.batches):
        m = pop.step()
        assert not m.exploded.any(), f"batch {step}: a member exploded; the comparison needs a stable regime"
        for p, ref in enumerate(refs):
            expected = ref.train_batch()
            for name in COMPARED:
                assert_close(m.for_member(p)[name], expected[name], f"batch {step}, member {p}, {name}")
            for side, sign in enumerate((-1, 1)):
                clip_hit[side] |= any(bool((E * sign >= clip * (1 - 1e-6)).any()) for E in ref.E)
    assert not pop.E_zero
    if math.isfinite(clip):
        assert all(clip_hit), f"the clip bound the ephemeral entries at (-clip, +clip): {clip_hit}"
    for l, lay in enumerate(pop.layout):
        first = [0, *lay.counts.cumsum(0).tolist()]
        for p, ref in enumerate(refs):
            got = pop.E[l][first[p]:first[p + 1]]  # (entries of member p, B), row-major like a boolean index
            torch.testing.assert_close(got, ref.E[l][:, ref.mask[l]].T, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(pop.S[l][p], ref.W[l], rtol=1e-5, atol=1e-6)
    for p, ref in enumerate(refs):
        torch.testing.assert_close(pop.W_out[p], ref.W_out, rtol=1e-5, atol=1e-6)
