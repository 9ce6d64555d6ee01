"""The stability dashboard and the self-contained HTML report.

    sweeper dashboard [--storage URL] [--host 127.0.0.1] [--port 8050] [--token T]
    sweeper report STUDY -o report.html

Layers, one way (nothing here writes to the database):

    data.py      what a view shows, read from the database in read-only sessions (aggregated in SQL,
                 traces downsampled); plain dicts and numpy arrays, tested directly
    figures.py   Plotly figures built from those dicts (no database access)
    optional.py  the parts that come from other subpackages when they exist (boundary fit,
                 analysis figures, early-warning evaluation), imported lazily
    pages/       the Dash pages: one module each, `layout(ctx, query)` + `register(app, ctx)`
    app.py       the Dash app: routing, the token guard, `serve`
    report.py    one offline HTML file (plotly.js inlined)

Importing `sweeper.dashboard` loads nothing heavy; Dash and Plotly load with `create_app`/`build_report`.
"""

from __future__ import annotations

__all__ = ["build_report", "create_app", "serve"]


def create_app(*args, **kwargs):
    """See `sweeper.dashboard.app.create_app`."""
    from sweeper.dashboard.app import create_app as _create_app

    return _create_app(*args, **kwargs)


def serve(*args, **kwargs):
    """See `sweeper.dashboard.app.serve`."""
    from sweeper.dashboard.app import serve as _serve

    return _serve(*args, **kwargs)


def build_report(*args, **kwargs):
    """See `sweeper.dashboard.report.build_report`."""
    from sweeper.dashboard.report import build_report as _build_report

    return _build_report(*args, **kwargs)
