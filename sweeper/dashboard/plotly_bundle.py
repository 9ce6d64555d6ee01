"""The dashboard's own plotly.js: a partial bundle with only the trace types its figures draw.

plotly.min.js (4.8 MB, every trace type) takes about 0.9 s of a 2-core machine's main thread to
evaluate in Chromium, the largest single cost of a cold visit to the frontier page. The bundle in
`vendor/plotly-sweeper.min.js` (1.6 MB) is the same plotly.js release built from its own sources
with only the types in `BUNDLED_TRACES` (`dashboards/plotly_bundle/` builds it: `npm ci && npm run
build`); it evaluates in about 0.2 s.

`install(server)` serves it at the URL dcc.Graph loads plotly.js from, so the dashboard's pages get it
instead of the full one. That URL is what Dash's renderer hands dcc.Graph when it serves its own
scripts; tests/dashboard/test_plotly_bundle.py checks in Chromium that the plotly.js running is the bundle, so a
Dash release that moves it fails there rather than silently loading the full one.

The bundle is used only when its plotly.js version is the one the installed plotly package ships
(the figures' JSON is written for that version); otherwise, or when the file is missing, the
dashboard serves the full plotly.min.js as Dash does (`sweeper dashboard` says why).

The self-contained report (`sweeper report`) embeds the full plotly.js: it is opened rarely and offline,
where a second saved does not matter and any trace type must draw.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

BUNDLED_TRACES = ("scatter", "scattergl", "bar", "heatmap", "contour", "parcoords")
"""The trace types in the bundle (dashboards/plotly_bundle/entry.js registers the same ones)."""
BUNDLE = Path(__file__).parent / "vendor" / "plotly-sweeper.min.js"
PLOTLY_URL_SUFFIX = "/_dash-component-suites/plotly/package_data/plotly.min.js"
"""Where dcc.Graph loads plotly.js from when Dash serves its scripts itself (`serve_locally`)."""

_VERSION = re.compile(rb"plotly\.js v(\d+\.\d+\.\d+)")
log = logging.getLogger(__name__)


def _version(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return None
    found = _VERSION.search(head)
    return found.group(1).decode() if found else None


def full_plotly_path() -> Path:
    """The full plotly.min.js of the installed plotly package (what Dash would serve)."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def bundle_version() -> str | None:
    return _version(BUNDLE)


def full_version() -> str | None:
    return _version(full_plotly_path())


def usable() -> tuple[bool, str]:
    """(whether the bundle can stand in for plotly.min.js, why or why not)."""
    ours, theirs = bundle_version(), full_version()
    if ours is None:
        return False, f"no partial plotly.js bundle at {BUNDLE}; serving the full plotly.min.js"
    if ours != theirs:
        return False, (f"the partial plotly.js bundle is v{ours} but the installed plotly package ships v{theirs}; "
                       "serving the full plotly.min.js (rebuild it: cd dashboards/plotly_bundle && npm ci && npm run build)")
    return True, f"serving the partial plotly.js bundle v{ours} ({', '.join(BUNDLED_TRACES)})"


def install(server) -> bool:
    """Serve the bundle at dcc.Graph's plotly.js URL on the Flask `server`, if `usable()`; return whether it is."""
    ok, why = usable()
    log.debug(why)
    if not ok:
        return False
    from flask import request, send_file

    @server.before_request
    def _partial_plotly():
        if request.path.endswith(PLOTLY_URL_SUFFIX):
            return send_file(BUNDLE, mimetype="text/javascript", conditional=True, etag=True, max_age=0)
        return None

    return True
