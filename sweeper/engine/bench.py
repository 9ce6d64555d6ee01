"""`sweeper bench`: the population engine and the reference loop, side by side, in one process.

Both train the same configurations (same members, seeds and data). Throughput is counted in
member-steps: one member advancing one sequence by one character (P x B x T per batch).

The two sides are timed in alternating rounds: each round times `batches` engine batches, then
`reference_batches` batches of the reference loop on the population's first member. A shared
machine's speed drifts by tens of percent over seconds (other tenants, frequency), so a ratio taken
from one long engine run and one later reference run measures the drift as much as the code; each
round's ratio compares the two sides under the same conditions, and the report gives the median of
the rounds' ratios beside their range. The engine records its full metrics every `metrics_every`
batches, as in training (default 10, so a round of 10 batches holds one full batch); the reference
computes every metric on every batch, which is how it is written.

The report also gives the memory each side keeps per member-sequence for the ephemeral state, next
to the process's peak resident memory.

`bench_family` does the same for a fast-weight family (docs/families.md): `FamilyPopulation` against
the family's reference (`families/reference.py`, a per-character loop with autograd, one member), in
the same alternating rounds. The families compute every metric on every batch on both sides.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from dataclasses import asdict

import torch

from sweeper.config import ConfigError, Hyper, ModelConfig, RunConfig, TrainConfig, check_int
from sweeper.tasks import make_task


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn, n: int, device: str) -> float:
    _sync(device)
    start = time.perf_counter()
    for _ in range(n):
        fn()
    _sync(device)
    return time.perf_counter() - start


def _alternate(pop, ref, *, label: str, rounds: int, batches: int, reference_batches: int, device: str,
               steps: int, ref_steps: int, progress: bool) -> tuple[float, float, list[float]]:
    """Warm both sides up, then alternate `rounds` of `batches` engine batches and `reference_batches`
    reference batches (`ref` may be None). Returns engine seconds, reference seconds and each round's
    ratio of member-steps per second; `steps`, `ref_steps`: member-steps per batch of each side."""
    pop.step()  # warm-up: allocations, first-call overheads, the native kernels' build
    if ref is not None:
        ref.train_batch()
    engine_s, ref_s, ratios = 0.0, 0.0, []
    for r in range(rounds):
        if progress:
            print(f"  {label}: round {r + 1}/{rounds}", file=sys.stderr, flush=True)
        e = _timed(pop.step, batches, device)
        engine_s += e
        if ref is not None:
            f = _timed(ref.train_batch, reference_batches, "cpu")
            ref_s += f
            ratios.append((steps * batches / e) / (ref_steps * reference_batches / f))
    return engine_s, ref_s, ratios


def bench(*, width=256, depth=2, members=8, batch_size=32, batches=10, reference_batches=1, rounds=3,
          metrics_every=10, reset_every=1, device="cpu", updaters=("dfa",), task="key_recall", reference=True,
          progress=False) -> dict:
    """Engine vs reference per updater. `reference=False` times the engine alone (e.g. on a GPU,
    where the reference, a CPU loop, would take most of the time); then no ratio is reported."""
    from sweeper.engine.population import Population
    from sweeper.engine.reference import Reference

    for name, value in (("rounds", rounds), ("batches", batches), ("reference_batches", reference_batches)):
        check_int(name, value, low=1, high=10**6)  # before any compute: a ratio needs a timed batch of each
    t = make_task(task)
    hypers = [Hyper(lr=1e-2, plasticity=1e3, ratio=0.1, gamma=0.7, seed=s) for s in range(members)]
    total = 1 + rounds * batches + 1  # warm-up, the rounds, and one to spare (the last batch is always full)
    results = []
    for updater in updaters:
        recurrence = updater == "bptt"
        run = RunConfig(task=t, model=ModelConfig(depth=depth, width=width, recurrence=recurrence),
                        train=TrainConfig(updater=updater, batch_size=batch_size, batches=total,
                                          metrics_every=metrics_every, reset_every=reset_every, device=device,
                                          stop_on_explosion=False))
        steps_per_batch = members * batch_size * t.seq_len  # the engine's; the reference trains one member
        ref_steps_per_batch = batch_size * t.seq_len

        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        pop = Population(run, hypers)
        ref = None
        if reference:
            # The reference trains one member at a time on CPU; it is timed on the first member.
            ref_run = RunConfig(task=t, model=run.model,
                                train=TrainConfig(updater=updater, batch_size=batch_size, reset_every=reset_every,
                                                  batches=1 + rounds * reference_batches + 1))
            ref = Reference(ref_run, hypers[0])
        engine_s, ref_s, ratios = _alternate(pop, ref, label=updater, rounds=rounds, batches=batches,
                                             reference_batches=reference_batches, device=device,
                                             steps=steps_per_batch, ref_steps=ref_steps_per_batch, progress=progress)
        engine_rate = steps_per_batch * batches * rounds / engine_s
        eph_bytes = sum(E.element_size() * E.numel() for E in pop.E) / (pop.size * batch_size)
        backend = pop.layout[0].backend if pop.layout else "-"
        gpu_peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
        result = {
            "updater": updater,
            "engine_member_steps_per_s": engine_rate,
            "sparse_backend": backend,
            "engine_eph_state_bytes_per_sequence": eph_bytes,
            "masked_entries_bytes_per_sequence": int(pop.n_eph.max()) * pop.E[0].element_size() if pop.E else 0,
            "engine_seconds": engine_s,
            "peak_rss_mib_after_engine": _peak_rss_mib(),
            "gpu_peak_mib": gpu_peak,
        }
        if ref is not None:
            result.update({
                "reference_member_steps_per_s": ref_steps_per_batch * reference_batches * rounds / ref_s,
                "speedup": statistics.median(ratios),
                "speedup_rounds": ratios,
                "reference_eph_state_bytes_per_sequence": sum(E.element_size() * E.numel() for E in ref.E) / batch_size,
                "reference_seconds": ref_s,
            })
        results.append(result)
    return {
        "config": {"task": task, "width": width, "depth": depth, "members": members, "batch_size": batch_size,
                   "member_sequences": members * batch_size, "seq_len": t.seq_len, "rounds": rounds,
                   "engine_batches_per_round": batches, "reference_batches_per_round": reference_batches,
                   "metrics_every": metrics_every, "reset_every": reset_every, "device": device,
                   "torch": torch.__version__, "threads": torch.get_num_threads()},
        "results": results,
    }


FAMILY_BENCH_MODEL = {"fastweights": {"hidden": 64}, "fwp": {"d_model": 64}}
"""The families' bench size unless given (the rest: the model dataclasses' defaults)."""


def bench_family(kind: str, options: dict | None = None, *, members=32, batch_size=32, batches=10,
                 reference_batches=1, rounds=3, optimizer="adam", dtype="float32", device="cpu", task="key_recall",
                 reference=True, progress=False) -> dict:
    """FamilyPopulation vs the family's reference, `kind` "fastweights" or "fwp", model `options` over
    FAMILY_BENCH_MODEL (e.g. {"rule": "delta", "phi": "identity"}). Members: lr 1e-2 (Adam) and the
    paper's eta 0.5, lambda 0.95 (fastweights), beta_scale 1 and lambda 1, or 0.9 with a decay (fwp);
    seeds 0 .. P-1. The reference is timed on the first member, on the CPU."""
    from sweeper.engine.families.config import FamilyRun, FastWeightsHyper, FastWeightsModel, FWPHyper, FWPModel
    from sweeper.engine.families.forward import resolve_form
    from sweeper.engine.families.population import FamilyPopulation
    from sweeper.engine.families.reference import make_reference

    for name, value in (("rounds", rounds), ("batches", batches), ("reference_batches", reference_batches),
                        ("members", members)):
        check_int(name, value, low=1, high=10**6)  # before any compute: a ratio needs a timed batch of each
    if kind not in FAMILY_BENCH_MODEL:
        raise ConfigError("model.kind", f"got {kind!r}; expected one of {', '.join(FAMILY_BENCH_MODEL)}")
    t = make_task(task)
    model_cls = FastWeightsModel if kind == "fastweights" else FWPModel
    model = model_cls(**{**FAMILY_BENCH_MODEL[kind], **(options or {})})
    if kind == "fastweights":
        hypers = [FastWeightsHyper(lr=1e-2, eta=0.5, lam=0.95, seed=s) for s in range(members)]
    else:
        lam = 1.0 if model.decay == "none" else 0.9
        hypers = [FWPHyper(lr=1e-2, beta_scale=1.0, lam=lam, seed=s) for s in range(members)]
    total = 1 + rounds * batches + 1
    run = FamilyRun(t, model, TrainConfig(updater="bptt", optimizer=optimizer, batch_size=batch_size, batches=total,
                                          dtype=dtype, device=device, stop_on_explosion=False))
    steps_per_batch = members * batch_size * t.seq_len
    ref_steps_per_batch = batch_size * t.seq_len
    pop = FamilyPopulation(run, hypers)  # refuses a device that is not there, and a population that does not fit
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()  # the peak from here: the weights and what the batches add
    ref = None
    if reference:
        ref_run = FamilyRun(t, model, TrainConfig(updater="bptt", optimizer=optimizer, batch_size=batch_size,
                                                  batches=1 + rounds * reference_batches + 1, dtype=dtype))
        ref = make_reference(ref_run, hypers[0])
    engine_s, ref_s, ratios = _alternate(pop, ref, label=kind, rounds=rounds, batches=batches,
                                         reference_batches=reference_batches, device=device,
                                         steps=steps_per_batch, ref_steps=ref_steps_per_batch, progress=progress)
    result = {
        "model": kind,
        "form": resolve_form(model, t.seq_len, pop.form),
        "engine_member_steps_per_s": steps_per_batch * batches * rounds / engine_s,
        "engine_seconds": engine_s,
        "peak_rss_mib_after_engine": _peak_rss_mib(),
        "gpu_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None,
    }
    if ref is not None:
        result.update({
            "reference_member_steps_per_s": ref_steps_per_batch * reference_batches * rounds / ref_s,
            "speedup": statistics.median(ratios),
            "speedup_rounds": ratios,
            "reference_seconds": ref_s,
        })
    return {
        "config": {"task": task, "model": {"kind": kind, **asdict(model)}, "members": members,
                   "batch_size": batch_size, "member_sequences": members * batch_size, "seq_len": t.seq_len,
                   "optimizer": optimizer, "dtype": dtype, "rounds": rounds, "engine_batches_per_round": batches,
                   "reference_batches_per_round": reference_batches, "device": device,
                   "torch": torch.__version__, "threads": torch.get_num_threads()},
        "results": [result],
    }


def _format_family_bench(report: dict) -> str:
    from sweeper.engine.families.config import FastWeightsModel, FWPModel
    from sweeper.engine.train import describe_model

    c = report["config"]
    options = {k: v for k, v in c["model"].items() if k != "kind"}
    described = describe_model((FastWeightsModel if c["model"]["kind"] == "fastweights" else FWPModel)(**options))
    lines = [
        f"{described}; {c['task']}, P={c['members']} x B={c['batch_size']} = {c['member_sequences']} "
        f"member-sequences, T={c['seq_len']}, {c['optimizer']} {c['dtype']}, device {c['device']}, "
        f"torch {c['torch']} ({c['threads']} thread{'' if c['threads'] == 1 else 's'})",
        f"{c['rounds']} alternating rounds of {c['engine_batches_per_round']} engine batches and "
        f"{c['reference_batches_per_round']} reference batch(es) of the first member (every metric every batch on "
        "both sides); ratio: median of the rounds",
        f"{'model':<12} {'form':<10} {'engine steps/s':>15} {'reference steps/s':>18} {'ratio':>7} {'rounds':>13}",
    ]
    for r in report["results"]:
        has_ref = "speedup" in r
        rounds = "-".join(f"{x:.1f}" for x in (min(r["speedup_rounds"]), max(r["speedup_rounds"]))) if has_ref else "-"
        lines.append(
            f"{r['model']:<12} {r['form']:<10} {r['engine_member_steps_per_s']:>15,.0f} "
            + (f"{r['reference_member_steps_per_s']:>18,.0f} {r['speedup']:>6.1f}x " if has_ref
               else f"{'-':>18} {'-':>7} ")
            + f"{rounds:>13}"
        )
    r = report["results"][-1]
    lines.append("member-steps: one member advancing one sequence by one character; "
                 f"peak RSS: {r['peak_rss_mib_after_engine']:.0f} MiB"
                 + (f"; GPU peak {r['gpu_peak_mib']:.0f} MiB" if r["gpu_peak_mib"] is not None else ""))
    return "\n".join(lines)


def format_bench(report: dict) -> str:
    if "model" in report["config"]:
        return _format_family_bench(report)
    c = report["config"]
    lines = [
        f"{c['depth']}x{c['width']} {c['task']}, P={c['members']} x B={c['batch_size']} = {c['member_sequences']} "
        f"member-sequences, T={c['seq_len']}, reset every {c['reset_every']} sequence(s), device {c['device']}, "
        f"torch {c['torch']} ({c['threads']} thread{'' if c['threads'] == 1 else 's'})",
        f"{c['rounds']} alternating rounds of {c['engine_batches_per_round']} engine batches (full metrics every "
        f"{c['metrics_every']}) and {c['reference_batches_per_round']} reference batch(es); ratio: median of the rounds",
        f"{'updater':<9} {'engine steps/s':>15} {'reference steps/s':>18} {'ratio':>7} {'rounds':>17} "
        f"{'eph B/seq engine':>17} {'dense ref':>10} {'masked':>8}",
    ]
    for r in report["results"]:
        has_ref = "speedup" in r
        rounds = "-".join(f"{x:.1f}" for x in (min(r["speedup_rounds"]), max(r["speedup_rounds"]))) if has_ref else "-"
        lines.append(
            f"{r['updater']:<9} {r['engine_member_steps_per_s']:>15,.0f} "
            + (f"{r['reference_member_steps_per_s']:>18,.0f} {r['speedup']:>6.1f}x " if has_ref else f"{'-':>18} {'-':>7} ")
            + f"{rounds:>17} {r['engine_eph_state_bytes_per_sequence']:>17,.0f} "
            + (f"{r['reference_eph_state_bytes_per_sequence']:>10,.0f} " if has_ref else f"{'-':>10} ")
            + f"{r['masked_entries_bytes_per_sequence']:>8,}"
        )
    r = report["results"][-1]
    lines.append("ephemeral kernels: " + ", ".join(sorted({x["sparse_backend"] for x in report["results"]})))
    lines.append(f"peak RSS: {r['peak_rss_mib_after_engine']:.0f} MiB"
                 + (f"; GPU peak {r['gpu_peak_mib']:.0f} MiB" if r["gpu_peak_mib"] is not None else ""))
    return "\n".join(lines)
