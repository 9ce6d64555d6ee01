"""The partial plotly.js bundle the dashboard serves: it matches the installed plotly, holds every
trace type the pages draw, is what the browser actually runs, and stands behind the token like the rest.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sweeper.dashboard import plotly_bundle
from tests.helpers import browser as bench
from tests.helpers.synthetic import make_study

ENTRY = Path(__file__).resolve().parents[2] / "dashboards" / "plotly_bundle" / "entry.js"
needs_chromium = bench.needs_chromium


def test_bundle_is_the_installed_plotly_version():
    ok, why = plotly_bundle.usable()
    assert ok, why
    assert plotly_bundle.BUNDLE.stat().st_size < plotly_bundle.full_plotly_path().stat().st_size / 2
    assert (plotly_bundle.BUNDLE.parent / "PLOTLY_LICENSE").read_text().startswith("MIT License")


def test_entry_registers_exactly_the_listed_traces():
    registered = set(re.findall(r"require\('plotly\.js/lib/(\w+)'\)", ENTRY.read_text())) - {"core"}
    assert registered | {"scatter"} == set(plotly_bundle.BUNDLED_TRACES)  # core carries scatter


def test_a_version_mismatch_falls_back_to_the_full_plotly(monkeypatch):
    monkeypatch.setattr(plotly_bundle, "full_version", lambda: "0.0.1")
    ok, why = plotly_bundle.usable()
    assert not ok and "v0.0.1" in why and "npm run build" in why
    monkeypatch.setattr(plotly_bundle, "BUNDLE", Path("/nonexistent/plotly-sweeper.min.js"))
    assert plotly_bundle.usable()[0] is False


@pytest.fixture(scope="module")
def fitted_db(tmp_path_factory):
    """A synthetic study with a stored boundary fit (so the frontier draws its contours), large enough
    for the frontier to use WebGL (Scattergl)."""
    from sweeper.analysis.boundary import fit_boundary
    from sweeper.dashboard.figures import WEBGL_ABOVE
    from sweeper.db import open_db, upgrade

    url = f"sqlite:///{tmp_path_factory.mktemp('bundle') / 'bundle.sqlite3'}"
    upgrade(url)
    db = open_db(url)
    make_study(db, "fitted", members=WEBGL_ABOVE + 100, steps=4, seed=5)
    fit_boundary(db, "fitted", bootstrap=10)
    db.dispose()
    return url


def _get(client, path, **kw):
    response = client.get(path, **kw)
    return response.status_code, response.get_data()


def test_served_at_dcc_plotly_url_only_when_asked_and_behind_the_token(fitted_db):
    from sweeper.dashboard import create_app

    url = "/_dash-component-suites/plotly/package_data/plotly.min.js"
    partial = create_app(fitted_db).server.test_client()
    status, body = _get(partial, url)
    assert status == 200 and body == plotly_bundle.BUNDLE.read_bytes()
    full = create_app(fitted_db, partial_plotly=False).server.test_client()
    status, body = _get(full, url)
    assert status == 200 and body == plotly_bundle.full_plotly_path().read_bytes()

    guarded = create_app(fitted_db, token="correct-horse-battery").server.test_client()
    assert _get(guarded, url)[0] == 401
    status, body = _get(guarded, url, headers={"X-Sweeper-Token": "correct-horse-battery"})
    assert status == 200 and body == plotly_bundle.BUNDLE.read_bytes()


def test_only_the_pages_that_draw_graphs_preload_plotly(fitted_db):
    from sweeper.dashboard import create_app

    client = create_app(fitted_db).server.test_client()
    preload = f'<link rel="preload" as="script" href="{plotly_bundle.PLOTLY_URL_SUFFIX}">'
    for path in ("/frontier?study=fitted", "/overlay?study=fitted", "/member?id=1"):
        assert preload in client.get(path).get_data(as_text=True), path
    for path in ("/", "/table?study=fitted"):
        assert preload not in client.get(path).get_data(as_text=True), path


PAGES = [
    ("/frontier?study=fitted", "#frontier-graph .main-svg"),
    ("/overlay?study=fitted", "#overlay-graph .main-svg"),
    ("/importance?study=fitted", "#importance-stability .main-svg"),
    ("/parallel?study=fitted", "#parallel-graph .main-svg"),
    ("/member?id=1", "#member-graph .main-svg"),
]

TRACES_JS = """() => ({
  registered: Object.keys(Plotly.PlotSchema.get().traces),
  used: [...document.querySelectorAll('.js-plotly-plot')].flatMap(gd => gd.data.map(t => t.type || 'scatter')),
})"""


# Chromium's warning when a <link rel=preload> resource is not used within about 3 s of the load
# event. The page preloads plotly.js, which dcc.Graph requests once the routing callback has
# answered: on a loaded machine that can take longer. Only this warning, for plotly.js, is let pass.
UNUSED_PRELOAD = re.compile(
    r"The resource https?://[^ ]+" + re.escape(plotly_bundle.PLOTLY_URL_SUFFIX)
    + r" was preloaded using link preload but not used within a few seconds from the window's load event\."
)


def _console(errors: list[str]):
    def record(message):
        if message.type == "error" or (message.type == "warning" and not UNUSED_PRELOAD.match(message.text)):
            errors.append(f"{message.type}: {message.text}")

    return record


def test_only_the_unused_plotly_preload_warning_is_let_pass():
    class Message:
        def __init__(self, type, text):
            self.type, self.text = type, text

    errors: list[str] = []
    record = _console(errors)
    base = "http://127.0.0.1:8050"
    tail = " was preloaded using link preload but not used within a few seconds from the window's load event."
    record(Message("warning", "The resource " + base + plotly_bundle.PLOTLY_URL_SUFFIX + tail + " Please make sure ..."))
    assert errors == []
    record(Message("warning", base + "/_dash-component-suites/dash/other.js" + tail))
    record(Message("warning", "The resource " + base + "/assets/x.js" + tail))
    record(Message("error", "The resource " + base + plotly_bundle.PLOTLY_URL_SUFFIX + tail))
    record(Message("warning", "WebGL: too many active contexts"))
    assert len(errors) == 4


@needs_chromium
@pytest.mark.slow
def test_the_browser_runs_the_bundle_and_every_page_draws_with_it(fitted_db, chromium):
    used = set()
    with bench.serving(fitted_db) as base:
        context = chromium.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(30_000)
        errors = []
        page.on("console", _console(errors))
        page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
        for path, ready in PAGES:
            page.goto(base + path)
            page.wait_for_selector(ready)
            found = page.evaluate(TRACES_JS)
            assert set(found["registered"]) == set(plotly_bundle.BUNDLED_TRACES), path
            used |= set(found["used"])
        context.close()
    assert errors == []
    # every bundled type was drawn (the frontier's WebGL points, cells and contours; traces; bars; parcoords)
    assert used == set(plotly_bundle.BUNDLED_TRACES)
