"""The GPU check: everything that needs a CUDA device, in one command, into one JSON file.

    bash tools/gpu_check.sh                       # writes gpu_check.json
    .venv/bin/python -m tools.gpu_check --out results.json --budget-s 480

Four steps, each with its own time limit inside the budget (8 minutes by default), and the JSON file
rewritten after each one so that a step that hangs or a killed run still leaves the earlier results:

1. `device`: torch's version, the device's name, memory and compute capability.
2. `oracle`: the oracle tests that run on CUDA (the population engines of every model family on the
   device against their references on the CPU, every metric and the final weights to 1e-5), by
   pytest; the counts of passed, failed and skipped tests come from pytest's JUnit XML.
3. `bench`: `sweeper bench --device cuda --no-reference --json` for every model at the paper's sizes
   (the ephemeral model 2 x 256; fast weights with 100 hidden units, the largest of Ba et al.'s
   associative-retrieval sizes; a DeltaNet fast weight programmer of width 256), with many members.
4. `quickstart`: studies/quickstart.toml trained on the GPU with four trials sharing it
   (`execution.gpus = 0.25`) through `sweeper submit`, into a temporary SQLite file; records the
   study's status, its members' outcomes and the wall time.

Without a CUDA device it refuses (exit 2) before running anything. Run it from the repository root
after README.md's set-up command.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

ORACLE_TESTS = ("tests/engine/test_families_population.py", "tests/engine/test_population.py")
BENCHES = (  # (name, arguments of `sweeper bench`)
    ("ephemeral_2x256", ["--model", "ephemeral", "--width", "256", "--depth", "2", "--members", "64"]),
    ("fastweights_h100", ["--model", "fastweights", "--width", "100", "--members", "256"]),
    ("fwp_delta_d256", ["--model", "fwp", "--rule", "delta", "--phi", "silu_l2", "--width", "256", "--members", "64"]),
)
GPU_SHARE = 0.25
"""The GPU share of one quickstart trial: four trials on one device at once."""


def gpu_quickstart(source: str, share: float = GPU_SHARE) -> str:
    """studies/quickstart.toml's text made to train on CUDA with `share` of a GPU per trial.

    Edits three lines of the study (its name, train.device, execution.gpus) and keeps the rest, so
    the GPU run searches the same space as the CPU quickstart."""
    out, n = re.subn(r'(?m)^name = "([^"]+)"$', r'name = "\1_gpu"', source, count=1)
    out, m = re.subn(r"(?m)^\[train\]$", '[train]\ndevice = "cuda"', out, count=1)
    out, k = re.subn(r"(?m)^gpus = 0$", f"gpus = {share}", out, count=1)
    if (n, m, k) != (1, 1, 1):
        raise ValueError("studies/quickstart.toml no longer has the name, [train] and `gpus = 0` lines this check edits")
    return out


def _run(cmd: list[str], timeout: float) -> dict:
    """Run `cmd` from the repository root; its exit status, wall time and output tail."""
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        rc, out = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out = None, f"timed out after {timeout:.0f} s\n" + ((e.stdout or b"").decode(errors="replace")
                                                              if isinstance(e.stdout, bytes) else (e.stdout or ""))
    return {"cmd": " ".join(cmd), "rc": rc, "wall_s": round(time.perf_counter() - t0, 2), "tail": out[-3000:]}


def _junit_counts(path: Path) -> dict:
    if not path.exists():
        return {}
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    n, failed = int(suite.get("tests", 0)), int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    skipped = int(suite.get("skipped", 0))
    return {"tests": n, "passed": n - failed - skipped, "failed": failed, "skipped": skipped}


def device_info() -> dict:
    import torch

    if not torch.cuda.is_available():
        return {"cuda": False, "torch": torch.__version__}
    p = torch.cuda.get_device_properties(0)
    return {"cuda": True, "torch": torch.__version__, "cuda_version": torch.version.cuda, "name": p.name,
            "memory_gib": round(p.total_memory / 2**30, 1), "capability": f"{p.major}.{p.minor}",
            "devices": torch.cuda.device_count()}


def oracle(timeout: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        r = _run([PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "cuda", f"--junitxml={xml}",
                  *ORACLE_TESTS], timeout)
        r.update(_junit_counts(xml))
    return r


def bench(timeout_each: float) -> dict:
    results = {}
    for name, args in BENCHES:
        r = _run([PYTHON, "-m", "sweeper", "bench", *args, "--device", "cuda", "--no-reference", "--json"], timeout_each)
        if r["rc"] == 0:
            try:
                report = json.loads(r["tail"][r["tail"].index("{"):])
                r["results"] = report["results"]
                r["config"] = report["config"]
                del r["tail"]
            except (ValueError, KeyError) as e:
                r["parse_error"] = str(e)
        results[name] = r
    return results


def quickstart(timeout: float) -> dict:
    source = (ROOT / "studies" / "quickstart.toml").read_text()
    with tempfile.TemporaryDirectory() as tmp:
        study = Path(tmp) / "quickstart_gpu.toml"
        study.write_text(gpu_quickstart(source))
        db = f"sqlite:///{Path(tmp) / 'gpu.sqlite3'}"
        r = _run([PYTHON, "-m", "sweeper", "submit", str(study), "--storage", db, "--json", "--no-progress"], timeout)
        if r["rc"] == 0:
            try:
                r["summary"] = json.loads(r["tail"][r["tail"].index("{"):])
                del r["tail"]
            except ValueError as e:
                r["parse_error"] = str(e)
    r["gpus_per_trial"] = GPU_SHARE
    return r


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.gpu_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="gpu_check.json", help="the JSON file of results (default gpu_check.json)")
    p.add_argument("--budget-s", type=float, default=480.0, help="wall-clock budget of all steps (default 480)")
    args = p.parse_args(argv)
    if not args.budget_s > 60:
        print(f"--budget-s: got {args.budget_s:g}; expected more than 60 seconds", file=sys.stderr)
        return 2

    report: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "budget_s": args.budget_s,
                    "device": device_info()}
    out = Path(args.out)

    def save() -> None:
        tmp = out.with_suffix(out.suffix + ".tmp")
        tmp.write_text(json.dumps(report, indent=2) + "\n")
        os.replace(tmp, out)

    save()
    if not report["device"]["cuda"]:
        print("no CUDA device: torch.cuda.is_available() is False; this check needs one", file=sys.stderr)
        return 2
    t0 = time.perf_counter()

    def left(share: float) -> float:
        return max(30.0, share * (args.budget_s - (time.perf_counter() - t0)))

    steps = (("oracle", lambda: oracle(left(0.4))), ("bench", lambda: bench(left(0.5) / len(BENCHES))),
             ("quickstart", lambda: quickstart(left(1.0))))
    for name, step in steps:
        print(f"gpu check: {name} ...", file=sys.stderr, flush=True)
        report[name] = step()
        report["elapsed_s"] = round(time.perf_counter() - t0, 1)
        save()
    ok = (report["oracle"].get("failed", 1) == 0 and report["oracle"].get("passed", 0) > 0
          and all(b.get("rc") == 0 for b in report["bench"].values()) and report["quickstart"].get("rc") == 0)
    report["ok"] = ok
    save()
    print(f"gpu check: {'all steps passed' if ok else 'a step failed'} in {report['elapsed_s']:.0f} s; results in {out}",
          file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
