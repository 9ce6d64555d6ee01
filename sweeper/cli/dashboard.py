"""The dashboard commands of `sweeper`: dashboard, report. Parsing and printing only.

    sweeper dashboard [--storage URL] [--host 127.0.0.1] [--port 8050] [--token T] [--full-plotly]
    sweeper report STUDY -o report.html [--storage URL]

Both only read the database. The work is done by `sweeper.dashboard`; a refusal (a bad --host,
--token or --port, an unusable --storage, an unknown study) is a `SweeperError` printed once by
`sweeper.cli.main`.
"""

from __future__ import annotations

import argparse
import os
import sys

from sweeper.errors import SweeperError

TOKEN_ENV = "SWEEPER_DASHBOARD_TOKEN"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the dashboard commands to the `sweeper` parser's subcommands."""
    storage_help = "the trial database (default: $SWEEPER_DB or sqlite:///sweeper.sqlite3)"

    p = subparsers.add_parser("dashboard", help="serve the stability dashboard (read-only) in the browser")
    p.add_argument("--storage", metavar="URL", help=storage_help)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; any other needs --token)")
    p.add_argument("--port", type=int, default=8050)
    p.add_argument(
        "--token", default=os.environ.get(TOKEN_ENV),
        help=f"a secret every request must carry (?token=T once, then a cookie; or the X-Sweeper-Token header); "
        f"required for a non-loopback --host (default: ${TOKEN_ENV})",
    )  # fmt: skip
    p.add_argument(
        "--full-plotly", action="store_true",
        help="serve the full plotly.min.js (4.8 MB) instead of sweeper's partial bundle of the trace types the "
        "pages draw (1.6 MB; docs/benchmarks.md compares the two)",
    )  # fmt: skip
    p.set_defaults(func=cmd_dashboard)

    p = subparsers.add_parser("report", help="write one self-contained HTML report of a study (opens offline)")
    p.add_argument("study")
    p.add_argument("-o", "--output", required=True, metavar="PATH", help="the HTML file to write")
    p.add_argument("--storage", metavar="URL", help=storage_help)
    p.set_defaults(func=cmd_report)


def _check_can_listen(host: str, port: int) -> None:
    """Refuse a host:port a server could not listen on now, checked before the app is built, so that
    a taken port is named at once and not after the "serving on" line."""
    import socket

    if not 1 <= port <= 65535:  # Flask would raise an AssertionError
        raise SweeperError("--port", f"got {port}; expected an integer in [1, 65535]")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as e:
        raise SweeperError("--host", f"cannot resolve {host!r}: {e.strerror or e}") from None
    try:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server itself binds
            probe.bind(address)
    except OSError as e:
        raise SweeperError("--port", f"cannot listen on {host}:{port}: {e.strerror or e}; pick another port "
                                     f"with --port") from None


def cmd_dashboard(args) -> int:
    from sweeper.dashboard import security

    security.check_bind(args.host, args.token)  # BindRefused names --host or --token
    _check_can_listen(args.host, args.port)
    from sweeper.dashboard.app import create_app

    app = create_app(args.storage, token=args.token, partial_plotly=not args.full_plotly)
    if not args.full_plotly and not app.sweeper_partial_plotly:
        from sweeper.dashboard.plotly_bundle import usable

        print(f"sweeper dashboard: note: {usable()[1]}", file=sys.stderr)
    from sweeper.dashboard.views import warm_up

    warm_up()
    shown = f"[{args.host}]" if ":" in args.host else args.host
    suffix = "/?token=<your token>" if args.token else "/"
    print(f"sweeper dashboard (read-only) on http://{shown}:{args.port}{suffix}  (Ctrl-C to stop)", flush=True)
    if security.is_loopback(args.host):
        # Flask's "development server" warning and per-request lines are noise for a private, read-only
        # page on this machine; on another address they stay, since that is a deployment decision.
        import logging

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app.run(host=args.host, port=args.port, debug=False)
    return 0


def cmd_report(args) -> int:
    from pathlib import Path

    from sweeper.cli.db import output_error
    from sweeper.dashboard.data import open_readonly

    out = Path(args.output)
    if not out.parent.is_dir():
        raise SweeperError("--output", f"directory {out.parent} does not exist")
    db = open_readonly(args.storage)
    try:
        from sweeper.dashboard.report import build_report

        result = build_report(db, args.study, out)
    except OSError as e:
        raise output_error(args.output, e) from None
    finally:
        db.dispose()
    print(f"wrote {result['path']} ({result['bytes'] / 1e6:.1f} MB, {result['figures']} figures; "
          f"boundary fit {'included' if result['boundary_fit'] else 'not available'}, "
          f"early-warning evaluation {'included' if result['early_warning'] else 'not available'})")  # fmt: skip
    return 0
