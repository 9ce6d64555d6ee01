"""`sweeper submit STUDY.toml`: run or resume a study on Ray Tune. Parsing and printing only.

The work is in `sweeper.sweep.driver`; the flags are checked there, before anything is written.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
import threading
import time

from sweeper import jsonio

INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT), as a shell reports it; 143 (128 + SIGTERM) after SIGTERM."""
STOP_GRACE_ENV = "SWEEPER_STOP_GRACE_S"
STOP_GRACE_S = 60.0
"""After Ctrl-C or SIGTERM, how long the driver waits for Ray to stop before it exits anyway
(`$SWEEPER_STOP_GRACE_S`)."""
STOP_SIGNALS = {signal.SIGINT: ("Ctrl-C", "interrupted"), signal.SIGTERM: ("SIGTERM", "terminated")}
"""The signals that stop a submit the same way: what each is called, and the word of the resume line."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("submit", help="run (or resume) a study file on Ray Tune, results into the trial database")
    p.add_argument("study", help="a study file (studies/*.toml)")
    p.add_argument("--storage", help="database URL (default: $SWEEPER_DB or sqlite:///sweeper.sqlite3)")
    p.add_argument("--address", help="an existing Ray cluster: auto, HOST:PORT or ray://HOST:PORT; "
                                     "default: a private local Ray")
    # Read as text and checked by the driver, so that a bad count is one `sweeper: error:` line.
    p.add_argument("--num-cpus", metavar="N", help="CPUs of the private local Ray, 1 to this machine's (default: all)")
    p.add_argument("--max-trials", type=int, help="start at most this many Ray trials now (the rest on resubmit)")
    p.add_argument("--tune-storage", metavar="PATH",
                   help="Ray Tune's experiment directory; on a multi-host cluster a path every node shares "
                        "(default: $SWEEPER_TUNE_STORAGE, else a temporary directory here, removed at the end)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_submit)


def cmd_submit(args) -> int:
    if not args.address:
        from sweeper.sweep.local_ray import private_ray_env

        private_ray_env()  # loopback only, token auth said explicitly; must precede importing ray
    from sweeper.sweep.driver import format_result, submit

    with _stop_signals_exit(resume_command(args)) as stop:
        try:
            result = submit(args.study, storage=args.storage, address=args.address, num_cpus=args.num_cpus,
                            progress=not args.json and not args.no_progress, max_packs=args.max_trials,
                            tune_storage=args.tune_storage)
        except KeyboardInterrupt:
            print(f"\n{stop.message()}", file=sys.stderr)
            return 128 + stop.signum
    if args.json:
        from dataclasses import asdict

        print(jsonio.dumps(asdict(result)))
    else:
        print(format_result(result))
    return 0 if result.status == "COMPLETE" or args.max_trials is not None else 1


class _Stop:
    """Which stop signal came first (SIGINT until one does), and the line that says how to resume."""

    def __init__(self, resume: str):
        self.resume = resume
        self.signum = int(signal.SIGINT)

    def message(self) -> str:
        return f"sweeper: {STOP_SIGNALS[self.signum][1]}; run the same command to resume: {self.resume}"


@contextlib.contextmanager
def _stop_signals_exit(resume: str):
    """Ctrl-C (SIGINT) and SIGTERM (a scheduler's or `kill`'s stop) raise KeyboardInterrupt in the main
    thread: the driver records the study INTERRUPTED and stops Ray, and the command exits 128 + the
    signal with the resume line. The first signal also starts a watchdog: when the driver has not
    finished stopping Ray within the grace period (it has been seen to stay silent for minutes after a
    Ctrl-C), Ray is left behind, the temporary Tune directories are removed, and the process exits
    with that status. A second signal exits at once. (`start_ray` keeps this SIGTERM handler across
    `ray.init`, which installs its own.)"""
    stop = _Stop(resume)
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    grace = float(os.environ.get(STOP_GRACE_ENV, STOP_GRACE_S))
    pressed = threading.Event()

    def give_up(why: str) -> None:
        from sweeper.sweep.run import abandon

        abandon()
        print(f"\nsweeper: {why}\n{stop.message()}", file=sys.stderr, flush=True)
        os._exit(128 + stop.signum)

    def watchdog(name: str) -> None:
        time.sleep(grace)
        give_up(f"Ray did not stop within {grace:g} s of {name}; leaving it to exit with this process")

    def on_signal(signum, frame):
        name = STOP_SIGNALS[signum][0]
        if pressed.is_set():
            give_up(f"{name} again: leaving without waiting for Ray")
        pressed.set()
        stop.signum = int(signum)
        threading.Thread(target=watchdog, args=(name,), name="sweeper-stop-watchdog", daemon=True).start()
        raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, on_signal) for signum in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def resume_command(args, argv: list[str] | None = None) -> str:
    """The command line that resumes this study: the one typed, when this process was started by it."""
    argv = sys.argv if argv is None else argv
    if argv[1:2] == ["submit"]:
        prog = argv[0]
        head = [sys.executable, "-m", "sweeper"] if os.path.basename(prog) == "__main__.py" else [prog]
        return shlex.join(head + argv[1:])
    # Called in-process (`sweeper.cli.main([...])`): rebuilt from the parsed flags.
    words = ["sweeper", "submit", args.study]
    for flag, value in (("--storage", args.storage), ("--address", args.address), ("--num-cpus", args.num_cpus),
                        ("--max-trials", args.max_trials), ("--tune-storage", args.tune_storage)):
        if value is not None:
            words += [flag, str(value)]
    words += [flag for flag, on in (("--json", args.json), ("--no-progress", args.no_progress)) if on]
    return shlex.join(words)
