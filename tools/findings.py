#!/usr/bin/env python
"""Regenerate the CPU-sized numbers of docs/findings.md and docs/benchmarks.md, section by section.

    .venv/bin/python -m tools.findings --list                      # the sections, their estimated minutes
    .venv/bin/python -m tools.findings [--only SECTION[,SECTION]] [--out DIR] [--storage URL] [--num-cpus N]
    .venv/bin/python -m tools.findings --only fig7_boundary --storage URL --no-submit   # print from a database

Each section submits the shipped studies it reads into one scratch database (default: `DIR/findings.sqlite3`;
a study already COMPLETE there is not trained again) and then runs the commands that print its numbers:
`sweeper boundary`, `boundary compare`, `warn fit` / `warn eval`, `reproduce table1 --budget quick`,
`sweeper bench`, `tools.family_findings`, `tools.frontier_seeds`, `tools.drill`, ... Nothing here computes
a number itself: every step is a command a reader can type, each in its own process (so that, e.g.,
`OMP_NUM_THREADS=1` reaches torch), and its output is kept as it printed it.

Output, per section: `DIR/SECTION/NN_STEP.txt` (the step's standard output; `.err` beside it when it
wrote to standard error; `.json` when the step writes JSON), and `DIR/SECTION/section.json`: every step's
command line, exit status and seconds. `--no-submit` skips the submits and reads what the database holds
(a step whose study is missing then fails and says so). Exit status 1 when a step failed, 2 on bad input.

Not covered (not CPU-sized, or not a table of numbers): the GPU check (`tools/gpu_check.sh`), the `full`
Table 1 budget, the test suite's wall time, and the fast-weight families' engine timing on a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

GRID = "studies/fig7_reversal3_grid_cpu.toml"
FRONTIER = "studies/fig7_reversal3_frontier_cpu.toml"
FRONTIER_WARN = "studies/fig7_reversal3_frontier_warn_cpu.toml"
ASSOC = tuple(f"studies/assoc_{m}_h{h}_cpu.toml" for h in (20, 50, 100) for m in ("fastweights", "rnn"))
TRANSFER_NAMES = ("transfer_keyrecall_w128_dfa_cpu", "transfer_reversal3_w64_dfa_cpu", "transfer_palindrome_w64_dfa_cpu",
                  "transfer_keyrecall_w64_backprop_cpu", "transfer_keyrecall_w64_dfa_m10_cpu")
TRANSFER = tuple(f"studies/{n}.toml" for n in TRANSFER_NAMES)
SWEEPER = ("import sys\nfrom sweeper.cli import main\nsys.exit(main(sys.argv[1:]))",)
"""`python -c` of the `sweeper` command (the console script may not be on this interpreter's PATH)."""


@dataclass(frozen=True)
class Step:
    """One command. `argv` starts with "sweeper" (the CLI) or "tools.NAME" (`python -m tools.NAME`);
    "{storage}" and "{json}" (this step's JSON output path) in it are filled in when it runs."""

    name: str
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    json: bool = False
    """The step writes JSON to its standard output (kept as NN_STEP.json)."""


@dataclass(frozen=True)
class Section:
    key: str
    doc: str
    """Where the numbers are: "findings.md: <section title>" or "benchmarks.md: <section title>"."""
    minutes: float
    """Wall time on this project's 2-core CPU, studies included (as measured by a run of this script)."""
    studies: tuple[str, ...]
    steps: tuple[Step, ...]
    needs: str = ""
    """What the machine must have beyond the venv (PostgreSQL, Chromium), if anything."""
    fresh: bool = False
    """Run on a new database of its own (`OUT/SECTION/fresh.sqlite3`, removed first): for wall times, which a
    database holding the studies already would not measure."""


def _sw(*argv: str) -> tuple[str, ...]:
    return ("sweeper", *argv, "--storage", "{storage}")


SECTIONS: tuple[Section, ...] = (
    Section("keyrecall_dfa", "findings.md: Ephemeral weights with DFA and no recurrence beat the no-memory baseline "
            "on key recall", 1.0, (), tuple(
                Step(f"train_lr{lr}_p{p}_b{n}", ("sweeper", "train", "--task", "key_recall", "--width", "128",
                                                 "--updater", "dfa", "--batches", n, "--lr", lr, "--plasticity", p,
                                                 "--seeds", "1", "--json", "--no-progress"), json=True)
                for lr, p, n in (("1e-2", "1e3", "1000"), ("3e-2", "333", "1000"), ("1e-2", "300", "1000"),
                                 ("3e-3", "1e4", "1000"), ("1e-3", "1e3", "1500"), ("1e-3", "1e4", "1500"),
                                 ("1e-4", "1e5", "1500")))),
    Section("table1_quick", "findings.md: Table 1 of the paper, quick budget; benchmarks.md: Wall time of the "
            "shipped studies (Table 1 row)", 4.0, (),
            (Step("reproduce_table1_quick", ("sweeper", "reproduce", "table1", "--budget", "quick")),)),
    Section("table1_tuned", "findings.md: Table 1 of the paper, tuned per row", 60.0, (),
            (Step("reproduce_table1_tuned", _sw("reproduce", "table1", "--budget", "tuned", "--num-cpus", "2")),)),
    Section("fig7_boundary", "findings.md: The stability boundary on the Fig. 7 CPU grid", 0.5, (GRID,), (
        Step("boundary_logistic", _sw("boundary", "fig7_reversal3_grid_cpu")),
        Step("boundary_svm", _sw("boundary", "fig7_reversal3_grid_cpu", "--model", "svm", "--no-store")),
        Step("status", _sw("status", "fig7_reversal3_grid_cpu")),
    )),
    Section("memory_window", "findings.md: The memory window: stable and remembering, between two lines", 0.5,
            (GRID, "studies/keyrecall_grid_cpu.toml"), (
                Step("boundary_fig7", _sw("boundary", "fig7_reversal3_grid_cpu")),
                Step("boundary_keyrecall", _sw("boundary", "keyrecall_grid_cpu")),
                Step("trials_remembering", _sw("trials", "fig7_reversal3_grid_cpu", "--filter",
                                               "memory_outcome=stable (memory)")),
                Step("trials_remembering_keyrecall", _sw("trials", "keyrecall_grid_cpu", "--filter",
                                                         "memory_outcome=stable (memory)")),
            )),
    Section("frontier", "findings.md: Mapping the boundary with fewer trials (the shipped frontier study)", 1.0,
            (GRID, FRONTIER), (
                Step("boundary_compare", _sw("boundary", "compare", "fig7_reversal3_grid_cpu",
                                             "fig7_reversal3_frontier_cpu")),
                Step("boundary_compare_json", _sw("boundary", "compare", "fig7_reversal3_grid_cpu",
                                                  "fig7_reversal3_frontier_cpu", "--json"), json=True),
            )),
    Section("frontier_seeds", "findings.md: Mapping the boundary with fewer trials (per seed of the search, "
            "without and with the early warning)", 20.0, (GRID,), (
                Step("frontier_seeds", ("tools.frontier_seeds", "--seeds", "0-4", "--storage", "{storage}",
                                        "--json", "{json}")),
                Step("frontier_seeds_warn", ("tools.frontier_seeds", "--seeds", "0-4", "--early-warning",
                                             "--storage", "{storage}", "--json", "{json}")),
                Step("frontier_seeds_ranges", ("tools.frontier_seeds", "--seeds", "0-4", "--study",
                                               "studies/fig7_reversal3_frontier_ranges_cpu.toml",
                                               "--storage", "{storage}", "--json", "{json}")),
                Step("frontier_replay", ("tools.frontier_seeds", "--replay", "0-49", "--storage", "{storage}",
                                         "--json", "{json}")),
            )),
    Section("optuna_filtered", "findings.md: Mapping the boundary with fewer trials (Optuna with the boundary as a "
            "constraint)", 1.5, (GRID,), (
                Step("boundary_grid", _sw("boundary", "fig7_reversal3_grid_cpu")),
                Step("submit_filtered", _sw("submit", "studies/fig7_reversal3_optuna_filtered_cpu.toml",
                                            "--no-progress")),
                Step("submit_plain", _sw("submit", "studies/fig7_reversal3_optuna_cpu.toml", "--no-progress")),
                Step("status", _sw("status", "fig7_reversal3_optuna_filtered_cpu")),
                Step("best", _sw("query", "SELECT s.name, sum(m.outcome = 'exploded') AS exploded, count(*) AS "
                                 "members, max(m.eval_mem_acc) AS best_eval_mem_acc FROM sw_members m JOIN "
                                 "sw_studies s ON s.id = m.study_id WHERE s.name IN "
                                 "('fig7_reversal3_optuna_filtered_cpu', 'fig7_reversal3_optuna_cpu') GROUP BY s.name")),
            )),
    Section("early_warning", "findings.md: Early warning: predicting explosions", 2.0,
            ("studies/warn_keyrecall_fit_cpu.toml", "studies/warn_keyrecall_cpu.toml"), (
                Step("warn_fit_k100", _sw("warn", "fit", "warn_keyrecall_fit_cpu", "--name", "keyrecall_lr_k100",
                                          "--steps", "100", "--features", "trajectory", "--replace")),
                Step("warn_fit_whole", _sw("warn", "fit", "warn_keyrecall_fit_cpu", "--name", "keyrecall_lr",
                                           "--features", "trajectory", "--replace")),
                Step("warn_eval_k100", _sw("warn", "eval", "warn_keyrecall_cpu", "--predictor", "keyrecall_lr_k100")),
                Step("warn_eval_whole", _sw("warn", "eval", "warn_keyrecall_cpu", "--predictor", "keyrecall_lr")),
                Step("warn_eval_ratio_rule", _sw("warn", "eval", "warn_keyrecall_cpu")),
            )),
    Section("warn_transfer", "findings.md: Early warning on runs from elsewhere", 20.0,
            ("studies/warn_keyrecall_fit_cpu.toml", *TRANSFER), (
                Step("transfer_from_keyrecall", _sw("warn", "transfer", "warn_keyrecall_fit_cpu", *TRANSFER_NAMES,
                                                    "--steps", "100")),
                Step("transfer_from_keyrecall_json", _sw("warn", "transfer", "warn_keyrecall_fit_cpu",
                                                         *TRANSFER_NAMES, "--steps", "100", "--json"), json=True),
                Step("transfer_trajectory", _sw("warn", "transfer", "warn_keyrecall_fit_cpu", *TRANSFER_NAMES,
                                                "--steps", "100", "--features", "trajectory")),
                Step("transfer_all_pairs", _sw("warn", "transfer", "warn_keyrecall_fit_cpu", *TRANSFER_NAMES,
                                               "--steps", "100", "--all-pairs")),
                Step("transfer_cadences", _sw("warn", "transfer", "warn_keyrecall_fit_cpu", *TRANSFER_NAMES,
                                              "--steps", "100", "--cadences", "1,2,4")),
                Step("transfer_figures", ("tools.transfer_figures", "--storage", "{storage}", "--out", "docs/img")),
            )),
    Section("warn_families", "findings.md: Early warning on the fast-weight families", 4.0,
            ("studies/warn_fastweights_cpu.toml", "studies/warn_deltanet_cpu.toml"), (
                Step("bound_on_deltanet", _sw("warn", "eval", "warn_deltanet_cpu", "--predictor", "transition_bound")),
                Step("ratio_rule_on_deltanet", _sw("warn", "eval", "warn_deltanet_cpu", "--predictor", "ratio_rule")),
                Step("ratio_rule_on_fastweights", _sw("warn", "eval", "warn_fastweights_cpu", "--predictor",
                                                      "ratio_rule")),
                Step("fit_fastweights", _sw("warn", "fit", "warn_fastweights_cpu", "--name", "fastweights_portable",
                                            "--features", "portable", "--replace")),
                Step("fastweights_on_deltanet", _sw("warn", "eval", "warn_deltanet_cpu", "--predictor",
                                                    "fastweights_portable")),
            )),
    Section("assoc_retrieval", "findings.md: Fast weights on Ba et al.'s associative retrieval, on a CPU budget",
            8.0, ASSOC, (Step("family_findings", ("tools.family_findings", "--storage", "{storage}")),)),
    Section("deltanet", "findings.md: DeltaNet: where it explodes, and whether the transition bound marks it", 6.0,
            ("studies/deltanet_map_identity_cpu.toml", "studies/deltanet_map_silu_cpu.toml",
             "studies/deltanet_frontier_identity_cpu.toml"), (
                Step("boundary_identity", _sw("boundary", "deltanet_map_identity_cpu")),
                Step("boundary_silu", _sw("boundary", "deltanet_map_silu_cpu")),
                Step("boundary_frontier", _sw("boundary", "deltanet_frontier_identity_cpu")),
                Step("compare_frontier", _sw("boundary", "compare", "deltanet_map_identity_cpu",
                                             "deltanet_frontier_identity_cpu")),
                Step("family_findings", ("tools.family_findings", "--storage", "{storage}")),
            )),
    Section("fastweights_map", "findings.md: Fast weights (Ba et al.): the (lr, eta) stability map", 2.0,
            ("studies/fastweights_map_cpu.toml",), (
                Step("boundary", _sw("boundary", "fastweights_map_cpu")),
                Step("family_findings", ("tools.family_findings", "--storage", "{storage}")),
            )),
    Section("bench_engine", "benchmarks.md: Engine speed against the reference loop", 4.0, (), (
        Step("bench_run1", ("sweeper", "bench", "--updaters", "dfa,backprop,bptt"), env={"OMP_NUM_THREADS": "1"}),
        Step("bench_run2", ("sweeper", "bench", "--updaters", "dfa,backprop,bptt"), env={"OMP_NUM_THREADS": "1"}),
        Step("bench_run3", ("sweeper", "bench", "--updaters", "dfa,backprop,bptt"), env={"OMP_NUM_THREADS": "1"}),
        Step("bench_reset_every_2", ("sweeper", "bench", "--updaters", "dfa,bptt", "--reset-every", "2"),
             env={"OMP_NUM_THREADS": "1"}),
        Step("bench_two_threads", ("sweeper", "bench", "--updaters", "dfa,backprop,bptt")),
        Step("bench_torch_ops", ("sweeper", "bench", "--updaters", "dfa,backprop,bptt"),
             env={"OMP_NUM_THREADS": "1", "SWEEPER_NATIVE": "0"}),
    )),
    Section("bench_families", "benchmarks.md: The fast-weight families against their reference loops", 8.0, (), (
        *(Step(f"bench_fastweights_p{p}_run{k}", ("sweeper", "bench", "--model", "fastweights", "--members", p),
               env={"OMP_NUM_THREADS": "1"}) for k in (1, 2) for p in ("1", "8", "32")),
        *(Step(f"bench_fwp_delta_p{p}_run{k}", ("sweeper", "bench", "--model", "fwp", "--rule", "delta", "--members", p),
               env={"OMP_NUM_THREADS": "1"}) for k in (1, 2) for p in ("1", "8", "32")),
        Step("bench_fwp_delta_identity", ("sweeper", "bench", "--model", "fwp", "--rule", "delta", "--phi", "identity",
                                          "--members", "32"), env={"OMP_NUM_THREADS": "1"}),
        Step("bench_fwp_gated_delta", ("sweeper", "bench", "--model", "fwp", "--rule", "gated_delta", "--decay",
                                       "learned", "--members", "32"), env={"OMP_NUM_THREADS": "1"}),
    )),
    Section("study_wall_times", "benchmarks.md: Wall time of the shipped studies", 2.0, (), (
        Step("submit_quickstart", _sw("submit", "studies/quickstart.toml", "--no-progress")),
        Step("submit_grid", _sw("submit", GRID, "--num-cpus", "2", "--no-progress")),
        Step("submit_frontier", _sw("submit", FRONTIER, "--num-cpus", "2", "--no-progress")),
    ), fresh=True),
    Section("fault_drill", "benchmarks.md: Fault drill", 8.0, (),
            (Step("drill", ("tools.drill", "--storage", "both")),), needs="PostgreSQL on 127.0.0.1:5432"),
    Section("cluster", "benchmarks.md: A local two-node Ray cluster", 4.0, (),
            (Step("bench_cluster", ("tools.bench_cluster", "--batches", "6000", "--json", "{json}")),),
            needs="PostgreSQL on 127.0.0.1:5432"),
    Section("dashboard", "benchmarks.md: The dashboard's frontier page at 10,000 members", 1.0, (),
            (Step("bench_frontier", ("tools.bench_frontier", "--runs", "5")),), needs="Debian's /usr/bin/chromium"),
)
BY_KEY = {s.key: s for s in SECTIONS}


# ---------------------------------------------------------------------------------------------------
# Running


def command(step: Step, storage: str, json_path: Path) -> list[str]:
    """The step's command line for this interpreter, its placeholders filled in."""
    args = [a.replace("{storage}", storage).replace("{json}", str(json_path)) for a in step.argv]
    if args[0] == "sweeper":
        return [sys.executable, "-c", *SWEEPER, *args[1:]]
    if args[0].startswith("tools."):
        return [sys.executable, "-m", args[0], *args[1:]]
    raise ValueError(f"step {step.name}: unknown command {args[0]!r}")


def submit_step(study: str, num_cpus: int | None) -> Step:
    stem = Path(study).stem
    cpus = ("--num-cpus", str(num_cpus)) if num_cpus else ()
    return Step(f"submit_{stem}", _sw("submit", study, *cpus, "--no-progress"))


def run_section(section: Section, out: Path, storage: str, *, submit: bool = True, num_cpus: int | None = None,
                log=sys.stderr) -> dict:
    """Run one section's submits and steps; write their outputs under `out/section.key`; return its record."""
    where = out / section.key
    where.mkdir(parents=True, exist_ok=True)
    if section.fresh:
        for old in where.glob("fresh.sqlite3*"):
            old.unlink()
        storage = f"sqlite:///{where / 'fresh.sqlite3'}"
    steps = ([submit_step(s, num_cpus) for s in section.studies] if submit else []) + list(section.steps)
    record = {"section": section.key, "doc": section.doc, "storage": storage, "steps": []}
    started = time.time()
    for i, step in enumerate(steps):
        stem = where / f"{i:02d}_{step.name}"
        json_path = stem.with_suffix(".json")
        argv = command(step, storage, json_path)
        print(f"findings: {section.key}: {step.name}", file=log)
        t0 = time.time()
        proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **step.env},
                              cwd=Path(__file__).resolve().parent.parent)
        seconds = time.time() - t0
        (stem.with_suffix(".json") if step.json else stem.with_suffix(".txt")).write_text(proc.stdout)
        if proc.stderr.strip():
            stem.with_suffix(".err").write_text(proc.stderr)
        record["steps"].append({"step": step.name, "argv": _shown(argv), "env": step.env, "returncode": proc.returncode,
                                "seconds": round(seconds, 1)})
        if proc.returncode != 0:
            print(f"findings: {section.key}: {step.name} exited {proc.returncode} (see {stem}.err)", file=log)
    record["seconds"] = round(time.time() - started, 1)
    record["ok"] = all(s["returncode"] == 0 for s in record["steps"])
    (where / "section.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def _shown(argv: list[str]) -> list[str]:
    """A command line as a reader would type it (`sweeper ...`, `python -m tools.X ...`)."""
    if argv[1] == "-c":
        return ["sweeper", *argv[2 + len(SWEEPER):]]
    return ["python", *argv[1:]]


def format_list() -> str:
    rows = [f"{'section':18s} {'minutes':>7s}  where (and what it needs)"]
    for s in SECTIONS:
        needs = f"  [needs {s.needs}]" if s.needs else ""
        rows.append(f"{s.key:18s} {s.minutes:7.0f}  {s.doc}{needs}")
    rows.append(f"{'all':18s} {sum(s.minutes for s in SECTIONS):7.0f}")
    return "\n".join(rows)


def select(text: str | None) -> list[Section]:
    """The sections named in `text` ("a,b"), in the order given; all when None. ValueError naming the unknown."""
    if text is None:
        return list(SECTIONS)
    keys = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in BY_KEY]
    if unknown or not keys:
        raise ValueError(f"unknown section {', '.join(unknown) or repr(text)}; sections: {', '.join(BY_KEY)}")
    return [BY_KEY[k] for k in keys]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="list the sections with their estimated minutes")
    parser.add_argument("--only", default=None, metavar="SECTION[,SECTION]", help="run these sections only")
    parser.add_argument("--out", default="findings-out", help="output directory (default findings-out)")
    parser.add_argument("--storage", default=None, help="database URL (default: sqlite:///OUT/findings.sqlite3)")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of each submit's private local Ray")
    parser.add_argument("--no-submit", action="store_true", help="do not submit studies; read what the database holds")
    args = parser.parse_args(argv)
    if args.list:
        print(format_list())
        return 0
    try:
        sections = select(args.only)
    except ValueError as e:
        print(f"findings: error: --only: {e}", file=sys.stderr)
        return 2
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    storage = args.storage or f"sqlite:///{out / 'findings.sqlite3'}"
    if not re.match(r"^(sqlite|postgresql)", storage):
        print(f"findings: error: --storage: got {storage!r}; expected sqlite:///PATH or postgresql+psycopg://...",
              file=sys.stderr)
        return 2
    records = [run_section(s, out, storage, submit=not args.no_submit, num_cpus=args.num_cpus) for s in sections]
    for r in records:
        print(f"{r['section']}: {'ok' if r['ok'] else 'FAILED'} in {r['seconds']:.0f} s -> {out / r['section']}")
    return 0 if all(r["ok"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
