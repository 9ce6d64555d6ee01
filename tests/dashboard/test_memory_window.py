"""The memory window on the dashboard and in the report: members coloured exploded / stable without
memory / stable and remembering, the stability boundary and the memory onset drawn, hover text that
shows only what applies to a member's outcome, and the same in a real Chromium.

The study is `tests.helpers.synthetic.make_study`'s (a planted stability boundary) with a memory
judgement planted here on its stable members: a member remembers with probability sigmoid(z + 3),
z the synthetic explosion logit, so the memory onset runs beside the stability boundary, 3 logit
units below it, and the window lies between them.
"""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import browser as bench
from tests.helpers.db import dashboard_readonly, new_sqlite
from tests.helpers.synthetic import make_study

SHOTS = Path("/tmp/dashboard_shots")
needs_chromium = bench.needs_chromium
THRESHOLD = 0.156


def plant_memory(db, study: str, seed: int, unjudged: int = 0) -> None:
    """Judge the stable members of `study`: remembers with probability sigmoid(z + 3), eval_mem_acc and
    memory_threshold to match; the first `unjudged` stable members are left without a judgement."""
    import sqlalchemy as sa

    from sweeper.db import Member, Outcome, Study

    rng = np.random.default_rng(seed)
    with db.session() as s:
        members = s.scalars(sa.select(Member).join(Study, Study.id == Member.study_id)
                            .where(Study.name == study, Member.outcome == Outcome.STABLE).order_by(Member.id)).all()
        for i, m in enumerate(members):
            if i < unjudged:
                m.remembers, m.memory_threshold, m.eval_mem_positions = None, None, None
                continue
            z = 4.0 * (math.log10(m.lr) + 2.0) + 2.8 * (math.log10(m.plasticity) - 3.0)
            m.remembers = bool(rng.random() < 1 / (1 + math.exp(-(z + 3.0))))
            m.eval_mem_acc = float(rng.uniform(0.5, 1.0) if m.remembers else rng.uniform(0.0, THRESHOLD))
            m.memory_threshold, m.eval_mem_positions = THRESHOLD, 160


@pytest.fixture(scope="module")
def memory_url(tmp_path_factory):
    """"mem": judged, with a stored window fit; "mixed": judged but for 10 stable members; "plain": judged none."""
    from sweeper.analysis.window import fit_window

    with new_sqlite(tmp_path_factory.mktemp("window"), "window.sqlite3") as (url, db):
        make_study(db, "mem", members=400, steps=4, seed=21)
        plant_memory(db, "mem", seed=1)
        fit_window(db, "mem", bootstrap=20)
        make_study(db, "mixed", members=120, steps=2, seed=22)
        plant_memory(db, "mixed", seed=2, unjudged=10)
        make_study(db, "plain", members=120, steps=2, seed=23)
    return url


@pytest.fixture(scope="module")
def ro(memory_url):
    yield from dashboard_readonly(memory_url)


def _markers(fig) -> list:
    return [t for t in fig.data if t.type in ("scatter", "scattergl") and t.mode == "markers"]


# ---------------------------------------------------------------------------------------------------
# The figure's data


def test_frontier_info_labels_each_member_by_its_memory_outcome(ro):
    import sqlalchemy as sa

    from sweeper.dashboard.data import frontier_info, member_info
    from sweeper.db import Member, Study, study_progress
    from sweeper.outcomes import memory_outcome

    info = frontier_info(ro, "mem")
    with ro.read_session() as s:
        rows = s.execute(sa.select(Member.id, Member.outcome, Member.remembers)
                         .join(Study, Study.id == Member.study_id).where(Study.name == "mem")).all()
    stored = {i: memory_outcome(o, r) for i, o, r in rows}
    assert dict(zip(info["members"]["id"].tolist(), info["memory_outcome"].tolist())) == stored
    assert info["counts"] == study_progress(ro, "mem")[0]["memory_outcomes"]
    counts = info["counts"]
    assert counts["exploded"] > 0 and counts["stable (no memory)"] > 0 and counts["stable (memory)"] > 0
    assert counts["stable"] == 0  # every stable member is judged here
    labels = info["memory_outcome"]
    for label, memory in (("stable (memory)", "remembers"), ("stable (no memory)", "no memory"), ("exploded", None)):
        member = member_info(ro, int(info["members"]["id"][labels == label][0]))["member"]
        assert member["memory"] == memory and (member["memory_threshold"] is None) == (memory is None)


def test_the_frontier_draws_three_colours_and_both_lines(ro):
    from sweeper.dashboard import optional, views
    from sweeper.dashboard.figures import FRONTIER_COLORS, MEMORY_LINE

    view = views.frontier_view(ro, "mem")
    markers = _markers(view.figure)
    shown = {t.meta: t.marker.color for t in markers}
    assert set(shown) == {"exploded", "stable (no memory)", "stable (memory)"}
    assert all(color == FRONTIER_COLORS[label] for label, color in shown.items())
    assert sum(len(t.ids) for t in markers) == 400
    legend = sorted(t.name for t in markers if t.showlegend)
    counts = {label: sum(len(t.ids) for t in markers if t.meta == label) for label in shown}
    assert legend == sorted(f"{label} ({n})" for label, n in counts.items())
    lines = {t.name: t for t in view.figure.data if t.type == "contour" and t.contours.start == 0.5}
    assert set(lines) == {"stability boundary (P(stable) = 0.5)", "memory onset (P(remembers | stable) = 0.5)"}
    memory = lines["memory onset (P(remembers | stable) = 0.5)"]
    z = np.asarray(memory.z, dtype=float)
    assert np.nanmin(z) < 0.5 < np.nanmax(z) and memory.colorscale[0][1] == MEMORY_LINE
    stable_z = np.asarray(lines["stability boundary (P(stable) = 0.5)"].z, dtype=float)
    below = (stable_z > 0.5) & (z > 0.5)
    assert below.any() and ((stable_z > 0.5) & (z < 0.5)).any()  # the window, and stable without memory
    assert view.note.endswith("; the memory onset at the same values")
    assert not isinstance(view.fit["memory"], optional.Missing) and "decades wide" in view.fit["window"]
    assert "log10 plasticity = " in view.fit["memory"]["headline"]


@pytest.mark.parametrize("study", ["mem", "mixed"])
def test_hover_shows_only_what_applies_to_each_outcome(ro, study):
    from sweeper.dashboard.data import frontier_info
    from sweeper.dashboard.figures import frontier_figure

    info = frontier_info(ro, study)
    # An exploded member carrying a finite memory accuracy (no real one does): its hover must not show it.
    m = info["members"]
    boom = np.flatnonzero(m["outcome"] == "exploded")[:3]
    m["eval_mem_acc"][boom], m["memory_threshold"][boom] = 0.5, THRESHOLD
    for t in _markers(frontier_figure(info)):
        template = t.hovertemplate
        custom = np.asarray(t.customdata, dtype=np.float64)
        used = [int(k) for k in re.findall(r"customdata\[(\d+)\]", template)]
        assert np.isfinite(custom[:, used]).all(), template  # never NaN, never Infinity
        assert ("exploded at" in template) == (t.meta == "exploded"), template
        assert ("eval mem acc" in template) == t.meta.startswith("stable"), template
        assert (": remembers" in template) == (t.meta == "stable (memory)"), template
        assert (": no memory" in template) == (t.meta == "stable (no memory)"), template
        if t.meta == "exploded":  # the loss at the explosion, or that it was not finite
            assert ("final loss" in template) != ("loss not finite" in template), template


def test_unjudged_stable_members_are_grey_beside_judged_ones_and_green_alone(ro):
    from sweeper.dashboard.data import frontier_info
    from sweeper.dashboard.figures import FRONTIER_COLORS, OUTCOME_COLORS, frontier_figure

    mixed = {t.meta: t for t in _markers(frontier_figure(frontier_info(ro, "mixed"))) if t.showlegend}
    assert mixed["stable"].name == "stable (not judged) (10)" and mixed["stable"].marker.color == FRONTIER_COLORS["stable"]
    plain = {t.meta: t for t in _markers(frontier_figure(frontier_info(ro, "plain"))) if t.showlegend}
    assert set(plain) == {"stable", "exploded"}
    assert plain["stable"].name.startswith("stable (") and "judged" not in plain["stable"].name
    assert plain["stable"].marker.color == OUTCOME_COLORS["stable"]


def test_the_report_draws_the_window_and_counts_memory(ro, tmp_path):
    from sweeper.dashboard import build_report, optional

    result = build_report(ro, "mem", tmp_path / "mem.html")
    text = (tmp_path / "mem.html").read_text()
    assert result["boundary_fit"] and result["memory_onset"] and result["window"]
    fit = optional.boundary_fit(ro, "mem")
    assert "Memory onset: P(remembers | stable) = 0.5" in text and fit["window"] in text
    assert "the window at the median lr" in text
    assert "<td>stable (memory)</td>" in text and "<td>stable (no memory)</td>" in text
    assert "memory onset (P(remembers | stable) = 0.5)" in text  # the figure's line
    result = build_report(ro, "plain", tmp_path / "plain.html")  # no fit, no judgement
    text = (tmp_path / "plain.html").read_text()
    assert not result["memory_onset"] and not result["window"] and "stable (memory)" not in text


# ---------------------------------------------------------------------------------------------------
# In the browser

HOVER_JS = """(label) => {
    const gd = document.querySelector('#frontier-graph .js-plotly-plot');
    const t = gd._fullData.find(t => t.meta === label);
    const L = gd._fullLayout, box = gd.getBoundingClientRect();
    return {x: box.left + L._size.l + L.xaxis.l2p(t.x[0]), y: box.top + L._size.t + L.yaxis.l2p(t.y[0])};
}"""
HOVER_TEXT_JS = "() => [...document.querySelectorAll('.hoverlayer .hovertext tspan.line')].map(l => l.textContent).join(' / ')"


@needs_chromium
@pytest.mark.slow
def test_frontier_in_the_browser_shows_the_window(memory_url, page, ro, tmp_path):
    from sweeper.db import Member
    from sweeper.outcomes import memory_outcome

    errors = bench.watch_errors(page)
    with bench.serving(memory_url) as base:
        page.goto(f"{base}/frontier?study=mem")
        page.evaluate(bench.FRONTIER_DRAWN_JS, 400)
        names = page.evaluate("() => document.querySelector('#frontier-graph .js-plotly-plot')._fullData"
                              ".filter(t => t.showlegend !== false).map(t => t.name)")
        for name in ("stability boundary (P(stable) = 0.5)", "memory onset (P(remembers | stable) = 0.5)"):
            assert name in names, names
        assert {n.rsplit(" (", 1)[0] for n in names if n.endswith(")") and "P(" not in n} >= {
            "exploded", "stable (no memory)", "stable (memory)"}, names
        assert "decades wide" in page.inner_text("#window-summary")
        assert "log10 plasticity = " in page.inner_text("#memory-summary")
        seen = set()
        for label in ("exploded", "stable (memory)", "stable (no memory)"):
            target = page.evaluate(HOVER_JS, label)
            page.mouse.move(0, 0)
            page.mouse.move(target["x"], target["y"])
            page.wait_for_selector(".hoverlayer .hovertext")
            hover = page.evaluate(HOVER_TEXT_JS)
            shown = re.search(r"member (\d+) \(([^)]*\)?)\)", hover)
            with ro.read_session() as s:
                member = s.get(Member, int(shown.group(1)))
            outcome = memory_outcome(member.outcome, member.remembers)
            assert shown.group(2) == outcome, hover
            seen.add(outcome)
            assert "NaN" not in hover and "Infinity" not in hover and "undefined" not in hover, hover
            assert ("exploded at" in hover) == (outcome == "exploded"), hover
            assert ("eval mem acc" in hover) == outcome.startswith("stable"), hover
            assert (": remembers" in hover) == (outcome == "stable (memory)"), hover
        assert len(seen) >= 2, seen
        path = tmp_path / "frontier_window.png"
        page.screenshot(path=str(path), full_page=True)
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, SHOTS / path.name)
    assert errors == []
