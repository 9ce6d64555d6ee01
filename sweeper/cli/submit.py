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
"""Exit status after Ctrl-C (128 + SIGINT), as a shell reports it."""
STOP_GRACE_ENV = "SWEEPER_STOP_GRACE_S"
STOP_GRACE_S = 60.0
"""After Ctrl-C, how long the driver waits for Ray to stop before it exits anyway (`$SWEEPER_STOP_GRACE_S`)."""


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

    message = f"sweeper: interrupted; run the same command to resume: {resume_command(args)}"
    with _ctrl_c_exits(message):
        try:
            result = submit(args.study, storage=args.storage, address=args.address, num_cpus=args.num_cpus,
                            progress=not args.json and not args.no_progress, max_packs=args.max_trials,
                            tune_storage=args.tune_storage)
        except KeyboardInterrupt:
            print(f"\n{message}", file=sys.stderr)
            return INTERRUPTED
    if args.json:
        from dataclasses import asdict

        print(jsonio.dumps(asdict(result)))
    else:
        print(format_result(result))
    return 0 if result.status == "COMPLETE" or args.max_trials is not None else 1


@contextlib.contextmanager
def _ctrl_c_exits(message: str):
    """Ctrl-C raises KeyboardInterrupt as usual (the driver records the study INTERRUPTED and stops Ray),
    and also starts a watchdog: when the driver has not finished stopping Ray within the grace period
    (it has been seen to stay silent for minutes after a Ctrl-C), Ray is left behind, the temporary
    Tune directories are removed, and the process exits 130 with `message`. A second Ctrl-C exits at
    once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    grace = float(os.environ.get(STOP_GRACE_ENV, STOP_GRACE_S))
    pressed = threading.Event()

    def give_up(why: str) -> None:
        from sweeper.sweep.run import abandon

        abandon()
        print(f"\nsweeper: {why}\n{message}", file=sys.stderr, flush=True)
        os._exit(INTERRUPTED)

    def watchdog() -> None:
        time.sleep(grace)
        give_up(f"Ray did not stop within {grace:g} s of Ctrl-C; leaving it to exit with this process")

    def on_sigint(signum, frame):
        if pressed.is_set():
            give_up("Ctrl-C again: leaving without waiting for Ray")
        pressed.set()
        threading.Thread(target=watchdog, name="sweeper-stop-watchdog", daemon=True).start()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


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
