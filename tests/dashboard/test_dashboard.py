"""The dashboard and the report: data functions, security, strict JSON, and pages in a real Chromium.

The browser tests drive Debian's Chromium (/usr/bin/chromium) headless through Playwright against
`sweeper dashboard` in a subprocess on a free port; they skip (with the reason) only when Chromium
is not installed. Screenshots go to each test's tmp dir and to /tmp/dashboard_shots/.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import browser as bench
from tests.helpers.db import dashboard_readonly, new_sqlite
from tests.helpers.synthetic import make_study

SHOTS = Path("/tmp/dashboard_shots")
TOKEN = "correct-horse-battery"
needs_chromium = bench.needs_chromium


def strict_json(text: str):
    """json.loads that refuses NaN, Infinity and -Infinity (what browsers' JSON.parse refuses)."""

    def refuse(token):
        raise ValueError(f"non-strict JSON token {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def study_db(tmp_path_factory):
    """A SQLite database with a synthetic study of 150 members (NaN and inf in its metrics) and an empty one."""
    from sweeper.db import StudyStatus

    with new_sqlite(tmp_path_factory.mktemp("dash"), "dash.sqlite3") as (url, db):
        make_study(db, "toy", members=150, steps=12, seed=3)
        make_study(db, "live", members=0, status=StudyStatus.RUNNING)
    return url


@pytest.fixture(scope="module")
def rodb(study_db):
    yield from dashboard_readonly(study_db)


# ---------------------------------------------------------------------------------------------------
# Data


def test_frontier_info_has_every_member_and_cell_rates_match_outcomes(rodb):
    from sweeper.dashboard.data import frontier_info

    info = frontier_info(rodb, "toy")
    m = info["members"]
    assert len(m["id"]) == 150
    cells = info["cells"]
    exploded = int((m["outcome"] == "exploded").sum())
    assert 0 < exploded < 150
    assert np.nansum(cells["rate"] * cells["count"]) == pytest.approx(exploded)
    assert cells["count"].sum() == 150

    sliced = frontier_info(rodb, "toy", {"clip": math.inf, "gamma": 0.5})
    assert set(sliced["members"]["clip"]) == {math.inf} and set(sliced["members"]["gamma"]) == {0.5}
    assert 0 < len(sliced["members"]["id"]) < 150
    with pytest.raises(ValueError, match="cannot slice"):
        frontier_info(rodb, "toy", {"lr; DROP TABLE sw_members": 1.0})


def test_frontier_columns_read_raw_equal_the_typed_values(db_url):
    """frontier_info reads its columns without SQLAlchemy's type processing; every value must equal
    what the typed ORM read gives: NaN, +inf, -0.0 and missing values included, on both backends."""
    import sqlalchemy as sa

    from sweeper.dashboard.data import FRONTIER_COLUMNS, frontier_info, open_readonly
    from sweeper.db import Member, Outcome, open_db, upgrade

    columns = (*FRONTIER_COLUMNS, "lr", "plasticity", "ratio", "gamma", "clip")  # the ephemeral model's axes too

    upgrade(db_url)
    db = open_db(db_url)
    make_study(db, "typed", members=40, steps=2)
    with db.session() as s:  # every awkward value in some float column
        first = s.scalars(sa.select(Member).order_by(Member.id).limit(3)).all()
        first[0].final_loss, first[0].baseline, first[0].clip = math.nan, None, math.inf
        first[1].final_loss, first[1].eval_mem_acc, first[1].outcome = -math.inf, -0.0, Outcome.STOPPED_EARLY
        first[2].stop_step, first[2].explode_step = 7, None
    with db.read_session() as s:
        typed = s.execute(sa.select(*(getattr(Member, c) for c in columns)).order_by(Member.id)).all()
    db.dispose()
    ro = open_readonly(db_url)
    m = frontier_info(ro, "typed")["members"]
    ro.dispose()
    assert set(m) == set(columns)
    order = np.argsort(m["id"])
    for j, column in enumerate(columns):
        got = m[column][order]
        if column in ("outcome", "id", "seed", "steps_done"):
            assert got.tolist() == [row[j].value if column == "outcome" else row[j] for row in typed], column
        else:
            want = np.array([math.nan if row[j] is None else row[j] for row in typed], dtype=np.float64)
            np.testing.assert_array_equal(got, want, err_msg=column)  # NaN equals NaN here
            assert np.array_equal(np.signbit(got), np.signbit(want)), column  # -0.0 kept
    assert m["final_loss"][order][1] == -math.inf and math.isnan(m["final_loss"][order][0])
    assert m["clip"][order][0] == math.inf and math.isnan(m["baseline"][order][0])


def test_frontier_figure_sends_float32_unless_an_id_or_seed_would_lose_digits(rodb):
    import base64

    from sweeper.dashboard.data import frontier_info
    from sweeper.dashboard.figures import frontier_figure, hover_columns

    info = frontier_info(rodb, "toy")
    width = len(hover_columns(info["axes"]))

    def points(info):  # every stable point's customdata, over the stable traces (split by what hover shows)
        traces = [t for t in frontier_figure(info).to_dict()["data"] if t.get("meta") == "stable"]
        dtypes = {t["customdata"]["dtype"] for t in traces} | {t["x"]["dtype"] for t in traces}
        assert len(traces) >= 2 and len(dtypes) == 1  # no clip and a clip: two hover templates
        dtype = np.float32 if traces[0]["customdata"]["dtype"] == "f4" else np.float64
        custom = np.concatenate([np.frombuffer(base64.b64decode(t["customdata"]["bdata"]), dtype).reshape(-1, width)
                                 for t in traces])
        return traces[0]["x"]["dtype"], custom[np.argsort(custom[:, 0])]

    dtype, custom = points(info)
    stable = info["members"]["outcome"] == "stable"
    order = np.argsort(info["members"]["id"][stable])
    assert dtype == "f4" and custom[:, 0].tolist() == info["members"]["id"][stable][order].tolist()
    lr = info["members"]["lr"][stable][order]
    np.testing.assert_allclose(custom[:, 1], lr, rtol=5e-5)  # 5 significant digits (hover shows 3)
    mid = {**info, "members": {**info["members"], "id": info["members"]["id"] + 123_456}}  # hover showed 123460
    dtype, custom = points(mid)
    assert dtype == "f4" and custom[:, 0].tolist() == mid["members"]["id"][stable][order].tolist()  # exact
    big = {**info, "members": {**info["members"], "id": info["members"]["id"] + 2**24 + 1}}
    dtype, custom = points(big)
    assert dtype == "f8" and custom[:, 0].tolist() == big["members"]["id"][stable][order].tolist()  # exact


def test_member_and_overlay_traces_are_downsampled(rodb):
    from sweeper.dashboard.data import frontier_info, member_info, overlay_info

    m = frontier_info(rodb, "toy")["members"]
    exploded_id = int(m["id"][m["outcome"] == "exploded"][0])
    info = member_info(rodb, exploded_id, max_points=5)
    assert len(info["metrics"]["step"]) == 5 and info["metric_rows"] == 12
    assert info["metrics"]["step"][-1] == info["member"]["explode_step"]  # last step kept
    overlay = overlay_info(rodb, "toy", per_outcome=3, max_points=4)
    assert [len(overlay["traces"][o]) for o in ("stable", "exploded")] == [3, 3]
    assert all(len(t["step"]) <= 4 for ts in overlay["traces"].values() for t in ts)
    assert overlay["counts"]["stable"] + overlay["counts"]["exploded"] == 150


def test_config_table_counts_seeds_and_explosions(rodb):
    from sweeper.dashboard.data import config_table

    rows = config_table(rodb, "toy")
    assert sum(r["seeds"] for r in rows) == 150
    for r in rows:
        assert r["explosion_rate"] == r["exploded"] / r["finished"]
        assert math.isnan(r["eval_mem_acc_mean"]) == (r["exploded"] == r["seeds"])


def test_importance_ranks_lr_and_plasticity_for_stability_and_gives_reasons(rodb, study_db):
    from sweeper.dashboard.importance import importance_info

    info = importance_info(rodb, "toy", "eval_mem_acc")
    ranks = list(info["stability"]["importances"])
    assert set(ranks[:2]) == {"lr", "plasticity"}  # the synthetic ground truth depends on these only
    assert "importances" in info["objective"]
    empty = importance_info(rodb, "live", "eval_mem_acc")
    assert "reason" in empty["stability"] and "reason" in empty["objective"]
    assert "reason" in importance_info(rodb, "toy", None)["objective"]


def test_boundary_fit_missing_is_a_reason_not_an_error(rodb):
    from sweeper.dashboard import optional, views

    view = views.frontier_view(rodb, "toy")
    if isinstance(view.fit, optional.Missing):
        assert "sweeper boundary toy" in view.fit.reason
    assert view.members == 150


def test_boundary_fit_headline_reads_the_stored_numbers(tmp_path):
    from sweeper.analysis.boundary import fit_boundary
    from sweeper.dashboard import optional
    from sweeper.db import open_db, upgrade

    url = f"sqlite:///{tmp_path / 'fit.sqlite3'}"
    upgrade(url)
    db = open_db(url)
    make_study(db, "fitted", members=120, steps=4, seed=5)
    report = fit_boundary(db, "fitted", bootstrap=20)
    fit = optional.boundary_fit(db, "fitted")
    db.dispose()
    h = report.to_dict()["summary"]
    line = fit["headline"]
    assert line.startswith(f"logistic on {h['members']} members; log10 plasticity = {h['slope']:.3g} log10 lr")
    assert f"slope [{h['slope_ci95_low']:.3g}, {h['slope_ci95_high']:.3g}]" in line
    assert f"CV accuracy {h['cv_accuracy']:.3f}" in line and "consistent with -1" in line


# ---------------------------------------------------------------------------------------------------
# Security and strict JSON (in-process, Flask's test client)


def test_binding_elsewhere_needs_a_token():
    from sweeper.dashboard.security import BindRefused, check_bind

    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    for host in ("0.0.0.0", "192.168.1.5", "example.org"):
        with pytest.raises(BindRefused, match="needs --token"):
            check_bind(host, None)
    check_bind("0.0.0.0", TOKEN)
    with pytest.raises(BindRefused, match="at least 8"):
        check_bind("0.0.0.0", "short")


def test_cli_refuses_public_host_without_token(study_db):
    result = subprocess.run(
        [sys.executable, "-m", "sweeper", "dashboard", "--storage", study_db, "--host", "0.0.0.0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "refusing to bind to 0.0.0.0" in result.stderr and "--token" in result.stderr


@pytest.mark.parametrize("port", ["0", "99999"])
def test_cli_refuses_a_port_out_of_range_naming_the_range(port, capsys):
    from sweeper.cli import main

    assert main(["dashboard", "--port", port]) == 2
    err = capsys.readouterr().err
    assert f"--port: got {port}; expected an integer in [1, 65535]" in err and "Traceback" not in err


def test_cli_refuses_a_port_in_use_before_building_the_app(tmp_path, capsys):
    import socket

    from sweeper.cli import main

    missing = tmp_path / "none.sqlite3"  # --storage is checked after the port: its error must not show
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert main(["dashboard", "--port", str(port), "--storage", f"sqlite:///{missing}"]) == 2
    err = capsys.readouterr().err
    assert f"--port: cannot listen on 127.0.0.1:{port}" in err and "in use" in err and "--storage" not in err
    assert not missing.exists()


def _callback(client, outputs, inputs, changed, state=(), headers=None):
    """POST one Dash callback as the browser does: `outputs` [(id, prop)], `inputs`/`state` [(id, prop, value)]."""
    body = {
        "output": ".." + "...".join(f"{i}.{p}" for i, p in outputs) + "..",
        "outputs": [{"id": i, "property": p} for i, p in outputs],
        "inputs": [{"id": i, "property": p, "value": v} for i, p, v in inputs],
        "state": [{"id": i, "property": p, "value": v} for i, p, v in state],
        "changedPropIds": [changed],
    }
    return client.post("/_dash-update-component", json=body, headers=headers or {})


def _route(client, path, search, headers=None):
    return _callback(client, [("nav", "children"), ("page", "children")],
                     [("url", "pathname", path), ("url", "search", search)], "url.pathname", headers=headers)  # fmt: skip


def test_token_is_required_on_every_request(study_db):
    from sweeper.dashboard import create_app

    client = create_app(study_db, token=TOKEN).server.test_client()
    assert client.get("/").status_code == 401
    assert client.get("/_dash-layout").status_code == 401
    assert _route(client, "/frontier", "?study=toy").status_code == 401
    assert client.get("/?token=wrong").status_code == 401
    assert "sweeper_token" not in client.get("/?token=wrong").headers.get("Set-Cookie", "")
    assert client.get("/", headers={"X-Sweeper-Token": TOKEN}).status_code == 200
    first = client.get(f"/?token={TOKEN}")
    assert first.status_code == 200 and "HttpOnly" in first.headers["Set-Cookie"]
    assert client.get("/_dash-layout").status_code == 200  # the cookie carries it now


def test_loopback_only_without_token_and_no_cross_origin_posts(study_db):
    from sweeper.dashboard import create_app

    client = create_app(study_db).server.test_client()
    assert client.get("/").status_code == 200
    assert client.get("/", headers={"Host": "evil.example:8050"}).status_code == 403  # DNS rebinding
    assert _route(client, "/", "", headers={"Origin": "http://evil.example"}).status_code == 403
    assert _route(client, "/", "", headers={"Origin": "http://localhost"}).status_code == 200


def _frontier_tick(app, study, shown, trigger="frontier-interval.n_intervals", slices=None, plane=("lr", "plasticity"),
                   default=("lr", "plasticity")):  # fmt: skip
    """POST the frontier's update callback as the browser does: the plane's dropdowns, one slice dropdown
    per axis in `slices` ({axis: value}; pattern-matching ids), the interval."""
    slices = slices or {"ratio": "all", "gamma": "all", "clip": "all"}
    ids = [{"axis": a, "type": "frontier-slice"} for a in slices]
    key = next(k for k in app.callback_map if "frontier-graph.figure" in k)
    body = {
        "output": key,
        "outputs": [{"id": "frontier-graph", "property": "figure"}, {"id": "boundary-box", "property": "children"},
                    {"id": "frontier-interval", "property": "disabled"}, {"id": "frontier-fingerprint", "property": "data"},
                    [{"id": i, "property": "disabled"} for i in ids]],
        "inputs": [{"id": "frontier-x", "property": "value", "value": plane[0]},
                   {"id": "frontier-y", "property": "value", "value": plane[1]},
                   [{"id": i, "property": "value", "value": v} for i, v in zip(ids, slices.values())],
                   {"id": "frontier-interval", "property": "n_intervals", "value": 1}],
        "state": [[{"id": i, "property": "id", "value": i} for i in ids],
                  {"id": "study-name", "property": "data", "value": study},
                  {"id": "frontier-fingerprint", "property": "data", "value": shown},
                  {"id": "frontier-default-plane", "property": "data", "value": list(default)}],
        "changedPropIds": [trigger],
    }  # fmt: skip
    return app.server.test_client().post("/_dash-update-component", json=body)


def test_live_frontier_redraws_only_when_its_data_changed(db_url):
    """A running study's frontier polls every refresh period; an unchanged study sends nothing back
    (HTTP 204, no 1.0 MB figure), a changed outcome or a new boundary fit sends the new figure."""
    import sqlalchemy as sa

    from sweeper.dashboard import create_app
    from sweeper.dashboard.data import frontier_fingerprint, open_readonly
    from sweeper.db import Member, Outcome, StudyStatus, open_db, upgrade

    url = db_url  # SQLite and PostgreSQL
    upgrade(url)
    db = open_db(url)
    make_study(db, "running", members=60, steps=3, status=StudyStatus.RUNNING)
    app = create_app(url)
    ro = open_readonly(url)
    shown = frontier_fingerprint(ro, "running")

    assert _frontier_tick(app, "running", shown).status_code == 204
    clip = '{"axis":"clip","type":"frontier-slice"}.value'
    sliced = _frontier_tick(app, "running", shown, trigger=clip, slices={"ratio": "all", "gamma": "all", "clip": "inf"})
    assert sliced.status_code == 200 and "clip=inf" in sliced.get_data(as_text=True)  # a slice always redraws
    response = strict_json(sliced.get_data(as_text=True))["response"]
    disabled = {k: v["disabled"] for k, v in response.items() if '"type":"frontier-slice"' in k}
    assert len(disabled) == 3 and not any(disabled.values())  # no slice axis is on the plane

    with db.session() as s:  # one member's outcome changes, as when a pack's results land
        first = s.scalar(sa.select(sa.func.min(Member.id)).where(Member.outcome == Outcome.STABLE))
        s.execute(sa.update(Member).where(Member.id == first).values(outcome=Outcome.EXPLODED))
    changed = _frontier_tick(app, "running", shown)
    assert changed.status_code == 200
    response = strict_json(changed.get_data(as_text=True))["response"]
    assert response["frontier-fingerprint"]["data"] == frontier_fingerprint(ro, "running") != shown
    assert "frontier-graph" in response
    assert _frontier_tick(app, "running", response["frontier-fingerprint"]["data"]).status_code == 204
    ro.dispose()
    db.dispose()


def test_frontier_views_are_prefetched_and_reused_while_their_data_is_unchanged(db_url, monkeypatch):
    import sqlalchemy as sa

    from sweeper.dashboard import create_app, views
    from sweeper.db import Member, Outcome, open_db, upgrade

    upgrade(db_url)
    db = open_db(db_url)
    make_study(db, "cached", members=60, steps=3)
    built = []
    real_view = views.frontier_view

    def counted(*args, **kwargs):  # the real build, counted
        built.append(args[1:])
        return real_view(*args, **kwargs)

    monkeypatch.setattr(views, "frontier_view", counted)
    app = create_app(db_url, token=TOKEN)
    cache, client = app.sweeper_context.frontier_cache, app.server.test_client()

    def settle():  # wait for the prefetch thread's queue to drain
        if cache._pool is not None:
            cache._pool.submit(lambda: None).result(timeout=60)

    assert client.get("/frontier?study=cached").status_code == 401  # no token: nothing is built
    settle()
    assert built == []
    assert client.get(f"/frontier?study=cached&token={TOKEN}").status_code == 200  # the page's HTML
    settle()
    assert built == [("cached", {}, None)]  # built in the background (the study's own plane), before any callback asked
    page = _route(client, "/frontier", "?study=cached", headers={"X-Sweeper-Token": TOKEN})
    assert page.status_code == 200 and "frontier-graph" in page.get_data(as_text=True)
    assert len(built) == 1  # the routing callback found it ready
    fingerprint, first = cache.get("cached")
    assert cache.get("cached", {"gamma": None})[1] is first and len(built) == 1
    assert cache.get("cached", {"clip": math.inf})[1] is not first and len(built) == 2  # a slice is its own view

    with db.session() as s:  # an outcome changes: the fingerprint changes, and the view is rebuilt
        one = s.scalar(sa.select(sa.func.min(Member.id)).where(Member.outcome == Outcome.STABLE))
        s.execute(sa.update(Member).where(Member.id == one).values(outcome=Outcome.EXPLODED))
    changed, view = cache.get("cached")
    assert changed != fingerprint and view is not first and len(built) == 3
    exploded = [sum(len(t.ids) for t in v.figure.data if t.meta == "exploded") for v in (first, view)]
    assert exploded[1] == exploded[0] + 1  # the new figure shows the change

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(views, "frontier_view", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        cache.get("cached", {"gamma": 0.5})
    monkeypatch.setattr(views, "frontier_view", counted)
    assert cache.get("cached", {"gamma": 0.5})[1].members > 0  # a failed build is not kept
    assert client.get(f"/frontier?study=nosuch&token={TOKEN}").status_code == 200
    settle()  # the prefetch of an unknown study fails quietly; the page says so itself
    db.dispose()


@pytest.mark.parametrize("path", ["/", "/frontier", "/overlay", "/importance", "/parallel", "/table", "/member"])
def test_every_page_serves_strict_json_despite_nan_and_inf(study_db, rodb, path):
    from sweeper.dashboard import create_app
    from sweeper.dashboard.data import frontier_info

    client = create_app(study_db).server.test_client()
    m = frontier_info(rodb, "toy")["members"]
    exploded = int(m["id"][m["outcome"] == "exploded"][0])  # its loss is inf, its grad_ratio NaN at the end
    response = _route(client, path, f"?id={exploded}" if path == "/member" else "?study=toy")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    strict_json(text)
    assert "NaN" not in text and "Infinity" not in text
    strict_json(client.get("/_dash-layout").get_data(as_text=True))


def test_nan_in_a_figure_list_becomes_null():
    """Plotly's encoder (which Dash uses for every response) writes NaN/inf in lists as null."""
    import plotly.graph_objects as go
    from dash._utils import to_json

    text = to_json(go.Figure(go.Scatter(x=[1, 2, 3], y=[1.0, math.nan, math.inf])))
    assert strict_json(text)["data"][0]["y"] == [1.0, None, None]


def test_table_filter_refuses_injection(study_db):
    from sweeper.dashboard.pages.table import _filters

    assert _filters("outcome=exploded; lr>1e-3") == [("outcome", "=", "exploded"), ("lr", ">", 1e-3)]
    for bad in ("' OR 1=1 --", "lr>1; DROP TABLE sw_members", "lr>1e-3 UNION SELECT 1"):
        with pytest.raises(ValueError):
            _filters(bad)


def test_report_is_one_file_without_external_resources(study_db, rodb, tmp_path):
    from sweeper.dashboard import build_report

    result = build_report(rodb, "toy", tmp_path / "r.html")
    text = (tmp_path / "r.html").read_text()
    assert result["figures"] >= 4
    assert "<script src" not in text.replace(" ", "") and '<link rel="stylesheet"' not in text
    for section in ("Stability frontier", "Boundary fit", "Early-warning evaluation", "Table 1", "Fig. 6", "Fig. 7"):
        assert section in text
    if result["early_warning"]:  # sweeper.warn replays the synthetic members through the ratio rule
        assert "baseline: explosion_criterion" in text


# ---------------------------------------------------------------------------------------------------
# In the browser


def _shot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / path.name)


@pytest.fixture(scope="module")
def server(study_db):
    with bench.serving(study_db) as base:
        yield base


@needs_chromium
@pytest.mark.slow
@pytest.mark.parametrize("path,ready", [
    ("/", "#studies-table table"),
    ("/frontier?study=toy", "#frontier-graph .main-svg"),
    ("/overlay?study=toy", "#overlay-graph .main-svg"),
    ("/importance?study=toy", "#importance-stability .main-svg"),
    ("/parallel?study=toy", "#parallel-graph .main-svg"),
    ("/table?study=toy", "#members-table td"),
])  # fmt: skip
def test_pages_load_without_console_errors(server, page, path, ready, tmp_path):
    errors = bench.watch_errors(page)
    page.goto(server + path)
    page.wait_for_selector(ready)
    page.wait_for_timeout(300)
    _shot(page, tmp_path, "page" + path.split("?")[0].replace("/", "_"))
    assert errors == []


@needs_chromium
@pytest.mark.slow
def test_frontier_shows_every_member_and_a_click_opens_its_traces(server, page, rodb, tmp_path):
    from sweeper.db import Member, Study

    with rodb.read_session() as s:
        import sqlalchemy as sa

        count = s.scalar(sa.select(sa.func.count()).select_from(Member).join(Study, Member.study_id == Study.id)
                         .where(Study.name == "toy"))  # fmt: skip
    errors = bench.watch_errors(page)
    page.goto(f"{server}/frontier?study=toy")
    page.evaluate(bench.FRONTIER_DRAWN_JS, count)  # resolves once `count` points are drawn
    # An exploded member's point, in page pixels.
    target = page.evaluate("""() => {
        const gd = document.querySelector('#frontier-graph .js-plotly-plot');
        const t = gd._fullData.find(t => t.meta === 'exploded');
        const L = gd._fullLayout, box = gd.getBoundingClientRect();
        return {id: t.customdata[0][0], x: box.left + L._size.l + L.xaxis.l2p(t.x[0]),
                y: box.top + L._size.t + L.yaxis.l2p(t.y[0])};
    }""")  # fmt: skip
    page.mouse.move(target["x"], target["y"])
    page.wait_for_selector(".hoverlayer .hovertext")
    hover = page.evaluate(
        "() => [...document.querySelectorAll('.hoverlayer .hovertext tspan.line')].map(l => l.textContent).join(' / ')"
    )
    with rodb.read_session() as s:  # the hover shows this member's config and result, as stored
        member = s.get(Member, int(target["id"]))
    assert f"member {member.id} (exploded)" in hover, hover
    assert f"seed {member.seed}" in hover and f"steps {member.steps_done}, exploded at {member.explode_step}" in hover
    assert f"lr {member.lr:#.3g}, " in hover and f"gamma {member.gamma:#.3g}, " in hover, hover  # d3's .3g
    page.mouse.click(target["x"], target["y"])
    page.wait_for_selector("#member-graph .main-svg")
    assert f"member {int(target['id'])}" in page.inner_text("#member-detail")
    assert "exploded" in page.inner_text("#member-detail")
    traces = page.evaluate("() => document.querySelector('#member-graph .js-plotly-plot').data.map(t => t.name)")
    assert {"loss", "acc", "mem_acc", "baseline (no memory)", "grad_eph", "grad_slow", "grad_ratio"} <= set(traces)
    _shot(page, tmp_path, "frontier_click")
    assert errors == []


@needs_chromium
@pytest.mark.slow
def test_frontier_slice_control_redraws(server, page):
    page.goto(f"{server}/frontier?study=toy")
    page.evaluate(bench.FRONTIER_DRAWN_JS, 150)
    page.click('[id*="frontier-slice"][id*="clip"]')  # the pattern-matching id {"axis": "clip", "type": "frontier-slice"}
    page.click("text=none")
    page.wait_for_function("() => document.querySelector('#frontier-graph .gtitle').textContent.includes('clip=inf')")


@needs_chromium
@pytest.mark.slow
def test_report_opens_from_disk_without_network(chromium, rodb, tmp_path):
    from sweeper.dashboard import build_report

    result = build_report(rodb, "toy", tmp_path / "report.html")
    context = chromium.new_context(viewport={"width": 1300, "height": 1000})
    requests: list[str] = []

    def only_files(route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            requests.append(route.request.url)
            route.abort()

    context.route("**/*", only_files)
    page = context.new_page()
    errors = bench.watch_errors(page)
    page.goto((tmp_path / "report.html").as_uri())
    page.wait_for_function(f"() => document.querySelectorAll('.js-plotly-plot .main-svg').length >= {result['figures']}")
    _shot(page, tmp_path, "report")
    context.close()
    assert requests == [] and errors == []


@needs_chromium
@pytest.mark.slow
def test_token_enforced_in_the_browser(study_db, chromium, tmp_path):
    with bench.serving(study_db, token=TOKEN) as base:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + "/frontier?study=toy", timeout=10)
        assert refused.value.code == 401
        context = chromium.new_context()
        page = context.new_page()
        errors = bench.watch_errors(page)
        denied = page.goto(base + "/")
        assert denied.status == 401
        page.goto(f"{base}/frontier?study=toy&token={TOKEN}")  # then the cookie carries it
        page.evaluate(bench.FRONTIER_DRAWN_JS, 150)
        page.goto(f"{base}/overlay?study=toy")
        page.wait_for_selector("#overlay-graph .main-svg")
        context.close()
        assert errors == [e for e in errors if "401" in e]  # only the refused first visit


@needs_chromium
@pytest.mark.slow
def test_ten_thousand_members_all_drawn(tmp_path, chromium):
    """Scale: every one of 10,000 members reaches the (WebGL) frontier. The 2 s budget is measured by
    tools/bench_frontier.py; this guards against gross regressions on a loaded CI machine."""
    from sweeper.db import open_db, upgrade

    url = f"sqlite:///{tmp_path / 'big.sqlite3'}"
    upgrade(url)
    db = open_db(url)
    make_study(db, "big", members=10_000, steps=3)
    db.dispose()
    with bench.serving(url) as base:
        result = bench.time_frontier(chromium, base, "big", 10_000, screenshot=str(tmp_path / "frontier_10k.png"))
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(tmp_path / "frontier_10k.png", SHOTS / "frontier_10k.png")
    print(f"10,000-member frontier drawn {result['drawn_ms']:.0f} ms after navigation (cold cache)")
    assert result["console_errors"] == []
    assert result["drawn_ms"] < 15_000


def test_member_figure_marks_the_onset_before_the_explosion(rodb):
    from sweeper.dashboard.data import frontier_info, member_info
    from sweeper.dashboard.figures import member_figure

    m = frontier_info(rodb, "toy")["members"]
    info = member_info(rodb, int(m["id"][m["outcome"] == "exploded"][0]))
    assert "explode_onset" in info["member"] and "final_step" in info["member"]
    step = info["member"]["explode_step"]
    info["member"]["explode_onset"] = step - 3
    layout = member_figure(info).to_dict()["layout"]
    lines = {(s["x0"], s["line"].get("dash")) for s in layout["shapes"]}
    assert {(step - 3, "dash"), (step, "solid")} <= lines
    assert {f"onset @ {step - 3}", f"exploded @ {step}"} <= {a["text"] for a in layout["annotations"]}


# ---------------------------------------------------------------------------------------------------
# Studies of the fast-weight families: their own plane, axes and signals


@pytest.fixture(scope="module")
def family_url(tmp_path_factory):
    """A fwp study (with a stored boundary fit) and a fastweights study, synthetic (tests.helpers.synthetic)."""
    from sweeper.analysis.boundary import fit_boundary

    with new_sqlite(tmp_path_factory.mktemp("family"), "family.sqlite3") as (url, db):
        make_study(db, "fam", members=300, steps=6, seed=11, kind="fwp")
        make_study(db, "fw", members=200, steps=6, seed=12, kind="fastweights")
        fit_boundary(db, "fam", bootstrap=20)
    return url


@pytest.fixture(scope="module")
def family_ro(family_url):
    yield from dashboard_readonly(family_url)


def test_family_study_meta_and_frontier_info_are_in_its_own_plane(family_ro):
    from sweeper.dashboard.data import FRONTIER_COLUMNS, frontier_info, study_meta

    meta = study_meta(family_ro, "fam")
    assert (meta.kind, meta.axes, meta.plane) == ("fwp", ("lr", "beta_scale", "lambda", "clip"), ("lr", "beta_scale"))
    assert meta.varying == meta.axes and meta.slice_axes() == ("lambda", "clip")
    assert meta.slices["lambda"] == [0.9, 1.0] and meta.slices["clip"] == [1.0, math.inf]
    info = frontier_info(family_ro, "fam")
    m = info["members"]
    assert (info["kind"], info["plane"], info["limits"]) == ("fwp", ("lr", "beta_scale"), {})
    assert set(m) == {*FRONTIER_COLUMNS, "lr", "beta_scale", "lambda", "clip"}  # no plasticity, ratio, gamma
    np.testing.assert_allclose(info["x"], np.log10(m["lr"]))
    np.testing.assert_allclose(info["y"], np.log10(m["beta_scale"]))
    assert info["cells"]["count"].sum() == 300
    decay = frontier_info(family_ro, "fam", {"clip": math.inf}, plane=("lr", "lambda"))
    assert decay["plane"] == ("lr", "lambda") and decay["limits"] == {"lambda": pytest.approx(-2.0)}
    assert sorted(set(np.round(decay["y"], 9))) == [-2.0, -1.0]  # 0.9 -> log10(0.1); lambda 1 one decade below
    assert set(decay["members"]["clip"]) == {math.inf}
    with pytest.raises(ValueError, match="cannot slice by 'plasticity'; choose from: lr, beta_scale, lambda, clip"):
        frontier_info(family_ro, "fam", {"plasticity": 100.0})
    with pytest.raises(ValueError, match="two distinct axes of the study's model"):
        frontier_info(family_ro, "fam", plane=("lr", "plasticity"))


def _templates(fig):
    return [t for t in fig.data if t.type in ("scatter", "scattergl") and t.mode == "markers"]


@pytest.mark.parametrize("study, y, title", [("fam", "beta_scale", "log10 beta_scale"),
                                             ("fw", "eta", "log10 eta (eta 0 at -2)")])  # fmt: skip
def test_family_hover_shows_the_members_own_hyperparameters_and_nothing_undefined(family_ro, study, y, title):
    import re

    from sweeper.dashboard.data import frontier_info
    from sweeper.dashboard.figures import frontier_figure

    info = frontier_info(family_ro, study)
    fig = frontier_figure(info)
    assert (fig.layout.xaxis.title.text, fig.layout.yaxis.title.text) == ("log10 lr", title)
    traces = _templates(fig)
    assert sum(len(t.ids) for t in traces) == len(info["members"]["id"])
    assert {t.meta for t in traces if t.showlegend} == {"stable", "exploded"}  # one legend entry per outcome
    templates = " ".join(t.hovertemplate for t in traces)
    assert "plasticity" not in templates and "ratio" not in templates and "gamma" not in templates
    assert f"lr %{{customdata[1]:.3g}}, {y} %{{customdata[2]:.3g}}, lambda %{{customdata[3]:.3g}}" in templates
    assert "no clip" in templates and "clip %{customdata[4]:.3g}" in templates
    for t in traces:
        custom = np.asarray(t.customdata, dtype=np.float64)
        shown = [int(k) for k in re.findall(r"customdata\[(\d+)\]", t.hovertemplate)]
        assert np.isfinite(custom[:, shown]).all(), t.hovertemplate  # never NaN, never Infinity
        assert ("exploded at" in t.hovertemplate) == (t.meta == "exploded")
        assert ("no clip" in t.hovertemplate) == bool(np.isinf(custom[:, 4]).all())


def test_family_member_panel_table_and_parallel_plot_use_the_familys_axes(family_ro):
    from sweeper.dashboard.data import config_table, frontier_info, member_info
    from sweeper.dashboard.figures import member_figure, parallel_figure
    from sweeper.db import member_rows

    m = frontier_info(family_ro, "fam")["members"]
    exploded = int(m["id"][(m["outcome"] == "exploded") & np.isinf(m["clip"])][0])
    info = member_info(family_ro, exploded)
    mm = info["member"]
    assert (mm["model_kind"], mm["axes"]) == ("fwp", ("lr", "beta_scale", "lambda", "clip"))
    assert mm["plasticity"] is None and mm["lambda"] in (0.9, 1.0)
    fig = member_figure(info)
    title = fig.layout.title.text
    assert title.startswith(f"member {exploded}: lr ") and ", beta_scale " in title and ", no clip, seed " in title
    assert "plasticity" not in title and "inf" not in title.lower()
    assert {t.name for t in fig.data} >= {"grad_fast", "grad_rest", "grad_fast_ratio"}
    assert np.isfinite(np.asarray(info["metrics"]["grad_fast_ratio"][:-1], dtype=float)).all()  # the family's signal
    rows = config_table(family_ro, "fam")
    assert set(rows[0]) >= {"lr", "beta_scale", "lambda", "clip"} and "plasticity" not in rows[0]
    assert sum(r["seeds"] for r in rows) == 300
    parallel = parallel_figure(member_rows(family_ro, "fam"), "eval_mem_acc", ("lr", "beta_scale", "lambda", "clip"))
    labels = [d.label for d in parallel.data[0].dimensions]
    assert labels == ["log10 lr", "log10 beta_scale", "lambda", "clip (none = top)", "eval_mem_acc"]
    assert set(parallel.data[0].dimensions[2].values) == {0.9, 1.0}


def test_family_frontier_view_draws_its_fit_in_any_plane_of_its_axes(family_ro):
    import re

    from sweeper.dashboard import views

    view = views.frontier_view(family_ro, "fam")
    assert re.fullmatch(r"P\(stable\) contours at lambda (0\.9|1), (no clip|clip 1)", view.note), view.note
    contours = [t for t in view.figure.data if t.type == "contour"]
    z = np.asarray(contours[0].z, dtype=float)
    assert len(contours) == 2 and np.nanmin(z) < 0.1 and np.nanmax(z) > 0.9  # the boundary crosses the plane
    assert "log10 beta_scale = " in view.fit["headline"] and "(lr * beta_scale)" in view.fit["headline"]
    decay = views.frontier_view(family_ro, "fam", {"clip": 1.0}, plane=("lr", "lambda"))
    assert "in (lr, lambda)" in decay.figure.layout.title.text and "(clip=1)" in decay.figure.layout.title.text
    assert decay.note.startswith("P(stable) contours at beta_scale ") and decay.note.endswith("clip 1")
    assert decay.figure.layout.yaxis.title.text == "log10(1 - lambda) (lambda 1 at -2)"


def test_family_frontier_page_picks_its_plane_and_slices_the_other_axes(family_url):
    from sweeper.dashboard import create_app
    from sweeper.dashboard.data import frontier_fingerprint, open_readonly

    app = create_app(family_url)
    page = _route(app.server.test_client(), "/frontier", "?study=fam").get_data(as_text=True)
    strict_json(page)
    for fragment in ('"id":"frontier-x"', '"value":"lr"', '"id":"frontier-y"', '"value":"beta_scale"',
                     '{"type":"frontier-slice","axis":"lambda"}', "log10 beta_scale"):
        assert fragment.replace(" ", "") in page.replace(" ", ""), fragment
    ro = open_readonly(family_url)
    shown = frontier_fingerprint(ro, "fam")
    ro.dispose()
    slices = {"lr": "all", "beta_scale": "all", "lambda": "all", "clip": "inf"}
    response = _frontier_tick(app, "fam", shown, trigger="frontier-y.value", slices=slices, plane=("lr", "lambda"),
                              default=("lr", "beta_scale"))
    assert response.status_code == 200
    body = strict_json(response.get_data(as_text=True))["response"]
    figure = body["frontier-graph"]["figure"]
    assert figure["layout"]["yaxis"]["title"]["text"] == "log10(1 - lambda) (lambda 1 at -2)"
    assert "in (lr, lambda) (clip=inf)" in figure["layout"]["title"]["text"]
    disabled = {json.loads(k.rsplit(".", 1)[0])["axis"]: v["disabled"] for k, v in body.items() if "frontier-slice" in k}
    assert disabled == {"lr": True, "beta_scale": False, "lambda": True, "clip": False}
    same = _frontier_tick(app, "fam", shown, trigger="frontier-x.value", slices=slices, plane=("lambda", "lambda"),
                          default=("lr", "beta_scale"))
    assert "pick two different axes" in same.get_data(as_text=True)


def test_report_builds_for_family_studies(family_ro, tmp_path):
    from sweeper.dashboard import build_report

    result = build_report(family_ro, "fam", tmp_path / "fam.html")
    text = (tmp_path / "fam.html").read_text()
    assert result["boundary_fit"] and result["fig7"] and result["fig6_source"] == "sweeper.analysis.figures"
    assert "Stability frontier (lr, beta_scale)" in text and "fast-state / rest gradient ratio" in text
    assert "<th>beta_scale</th><th>lambda</th><th>clip</th>" in text and "<th>plasticity</th>" not in text
    assert "NaN" not in text.split("<body>", 1)[1].split("<script")[0]  # the tables and notes
    result = build_report(family_ro, "fw", tmp_path / "fw.html")  # no stored fit: drawn all the same
    assert not result["boundary_fit"] and result["fig7"]
    assert "Stability frontier (lr, eta)" in (tmp_path / "fw.html").read_text()


@needs_chromium
@pytest.mark.slow
def test_family_frontier_in_the_browser_hovers_its_own_axes_and_switches_plane(family_url, page, family_ro, tmp_path):
    import re

    from sweeper.db import Member

    errors = bench.watch_errors(page)
    with bench.serving(family_url) as base:
        page.goto(f"{base}/frontier?study=fam")
        page.evaluate(bench.FRONTIER_DRAWN_JS, 300)
        ytitle = "() => document.querySelector('#frontier-graph .ytitle').textContent"
        assert page.evaluate(ytitle) == "log10 beta_scale"
        target = page.evaluate("""() => {
            const gd = document.querySelector('#frontier-graph .js-plotly-plot');
            const t = gd._fullData.find(t => t.meta === 'stable' && t.hovertemplate.includes('no clip'));
            const L = gd._fullLayout, box = gd.getBoundingClientRect();
            return {id: t.customdata[0][0], x: box.left + L._size.l + L.xaxis.l2p(t.x[0]),
                    y: box.top + L._size.t + L.yaxis.l2p(t.y[0])};
        }""")  # fmt: skip
        page.mouse.move(target["x"], target["y"])
        page.wait_for_selector(".hoverlayer .hovertext")
        hover = page.evaluate(
            "() => [...document.querySelectorAll('.hoverlayer .hovertext tspan.line')].map(l => l.textContent).join(' / ')"
        )
        shown = re.search(r"member (\d+) \((\w+)\)", hover)  # the topmost point there (seeds of a config share it)
        with family_ro.read_session() as s:
            member = s.get(Member, int(shown.group(1)))
        assert shown.group(2) == member.outcome.value and f"lr {member.lr:#.3g}, " in hover, hover
        assert f"beta_scale {member.beta_scale:#.3g}, lambda {member.lam:#.3g}, " in hover, hover
        assert ("no clip" in hover) == (member.clip == math.inf) and "plasticity" not in hover, hover
        assert ("exploded at" in hover) == (member.outcome.value == "exploded"), hover
        assert "NaN" not in hover and "Infinity" not in hover, hover
        page.click("#frontier-y")
        page.get_by_role("option", name="lambda", exact=True).click()
        page.wait_for_function(f"() => ({ytitle})().startsWith('log10(1 - lambda)')")
        assert page.evaluate(bench.FRONTIER_DRAWN_JS, 300)
        # an axis of the plane is not a slice: lambda's dropdown is disabled now, beta_scale's enabled
        page.wait_for_selector('button[id*="frontier-slice"][id*="lambda"][disabled]')
        assert page.is_enabled('button[id*="frontier-slice"][id*="beta_scale"]')
        _shot(page, tmp_path, "frontier_family_lambda")
    assert errors == []
