"""`sweeper bench`: the population engine and the reference loop, side by side, in one process.

Both train the same configurations (same members, seeds and data). Throughput is counted in
member-steps: one member advancing one sequence by one character (P x B x T per batch). The
report gives each side's rate, their ratio, and the memory each keeps per member-sequence for the
ephemeral state, next to the process's peak resident memory.
"""

from __future__ import annotations

import resource
import time

import torch

from .config import Hyper, ModelConfig, RunConfig, TrainConfig
from .tasks import make_task


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench(*, width=256, depth=2, members=8, batch_size=32, batches=5, reference_batches=1,
          device="cpu", updaters=("dfa",), task="key_recall", progress=False) -> dict:
    from .engine.population import Population
    from .engine.reference import Reference

    t = make_task(task)
    hypers = [Hyper(lr=1e-2, plasticity=1e3, ratio=0.1, gamma=0.7, seed=s) for s in range(members)]
    results = []
    for updater in updaters:
        recurrence = updater == "bptt"
        run = RunConfig(task=t, model=ModelConfig(depth=depth, width=width, recurrence=recurrence),
                        train=TrainConfig(updater=updater, batch_size=batch_size, batches=batches + 1,
                                          metrics_every=10**9, device=device, stop_on_explosion=False))
        steps_per_batch = members * batch_size * t.seq_len

        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        pop = Population(run, hypers)
        pop.step()  # warm-up: allocations, first-call overheads
        _sync(device)
        start = time.perf_counter()
        for _ in range(batches):
            pop.step()
        _sync(device)
        engine_s = time.perf_counter() - start
        engine_rate = steps_per_batch * batches / engine_s
        eph_bytes = sum(E.element_size() * E.numel() for E in pop.E) / (pop.size * batch_size)
        backend = pop.layout[0].backend if pop.layout else "-"
        gpu_peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
        rss_after_engine = _peak_rss_mib()

        # The reference trains one member at a time on CPU; time it on the first member only.
        ref_run = RunConfig(task=t, model=run.model,
                            train=TrainConfig(updater=updater, batch_size=batch_size, batches=reference_batches + 1))
        ref = Reference(ref_run, hypers[0])
        start = time.perf_counter()
        for _ in range(reference_batches):
            ref.train_batch()
        ref_s = time.perf_counter() - start
        ref_rate = batch_size * t.seq_len * reference_batches / ref_s
        ref_eph_bytes = sum(E.element_size() * E.numel() for E in ref.E) / batch_size

        results.append({
            "updater": updater,
            "engine_member_steps_per_s": engine_rate,
            "reference_member_steps_per_s": ref_rate,
            "speedup": engine_rate / ref_rate,
            "sparse_backend": backend,
            "engine_eph_state_bytes_per_sequence": eph_bytes,
            "reference_eph_state_bytes_per_sequence": ref_eph_bytes,
            "masked_entries_bytes_per_sequence": int(pop.n_eph.max()) * pop.E[0].element_size() if pop.E else 0,
            "engine_seconds": engine_s,
            "reference_seconds": ref_s,
            "peak_rss_mib_after_engine": rss_after_engine,
            "peak_rss_mib_after_reference": _peak_rss_mib(),
            "gpu_peak_mib": gpu_peak,
        })
    return {
        "config": {"task": task, "width": width, "depth": depth, "members": members, "batch_size": batch_size,
                   "member_sequences": members * batch_size, "seq_len": t.seq_len, "engine_batches": batches,
                   "reference_batches": reference_batches, "device": device,
                   "torch": torch.__version__, "threads": torch.get_num_threads()},
        "results": results,
    }


def format_bench(report: dict) -> str:
    c = report["config"]
    lines = [
        f"{c['depth']}x{c['width']} {c['task']}, P={c['members']} x B={c['batch_size']} = {c['member_sequences']} "
        f"member-sequences, T={c['seq_len']}, device {c['device']}, torch {c['torch']} ({c['threads']} threads)",
        f"{'updater':<9} {'engine steps/s':>15} {'reference steps/s':>18} {'ratio':>7} "
        f"{'eph B/seq engine':>17} {'dense ref':>10} {'masked':>8}",
    ]
    for r in report["results"]:
        lines.append(
            f"{r['updater']:<9} {r['engine_member_steps_per_s']:>15,.0f} {r['reference_member_steps_per_s']:>18,.0f} "
            f"{r['speedup']:>6.1f}x {r['engine_eph_state_bytes_per_sequence']:>17,.0f} "
            f"{r['reference_eph_state_bytes_per_sequence']:>10,.0f} {r['masked_entries_bytes_per_sequence']:>8,}"
        )
    r = report["results"][-1]
    lines.append("ephemeral kernels: " + ", ".join(sorted({x["sparse_backend"] for x in report["results"]})))
    lines.append(f"peak RSS: {r['peak_rss_mib_after_engine']:.0f} MiB after engine, "
                 f"{r['peak_rss_mib_after_reference']:.0f} MiB after reference"
                 + (f"; GPU peak {r['gpu_peak_mib']:.0f} MiB" if r["gpu_peak_mib"] is not None else ""))
    return "\n".join(lines)
