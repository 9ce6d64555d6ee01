"""The Dash app: a navigation bar, URL routing to the pages, the token guard, `serve`.

    app = create_app("sqlite:///sweeper.sqlite3", token=None)   # a dash.Dash; app.server is Flask
    serve(url, host="127.0.0.1", port=8050, token=None)         # refuses a public host without a token

Routing is one callback on the URL (not Dash's `use_pages`, which imports page modules from a folder
by path and keeps them in a process-wide registry; here the pages are ordinary modules of the
package, so `pip install` users get them and two apps in one process don't share state).
"""

from __future__ import annotations

from urllib.parse import parse_qs, quote

from dash import Dash, Input, Output, dcc, html
from flask import request

from sweeper.dashboard import plotly_bundle, security, views
from sweeper.dashboard.data import open_readonly
from sweeper.dashboard.pages import Context, page_modules
from sweeper.dashboard.pages import frontier as frontier_page
from sweeper.dashboard.pages import studies as studies_page
from sweeper.dashboard.pages import table as table_page
from sweeper.db import StudyNotFound

CSS = """
body { font-family: system-ui, sans-serif; margin: 0 16px 24px; color: #222; }
.sw-nav { display: flex; gap: 14px; align-items: baseline; padding: 10px 0; border-bottom: 1px solid #ddd; }
.sw-nav a { text-decoration: none; color: #1f5fa8; }
.sw-table { border-collapse: collapse; font-size: 13px; }
.sw-table th, .sw-table td { border-bottom: 1px solid #eee; padding: 3px 8px; text-align: left; }
.note { color: #666; font-size: 13px; }
.status-RUNNING { color: #1f77b4; font-weight: bold; }
"""


def _nav(pages, query: dict) -> html.Div:
    study = query.get("study")
    links = [html.B("sweeper")]
    for page in pages:
        if page.PATH == "/member":
            continue
        if page.NEEDS_STUDY and not study:
            continue
        href = page.PATH + (f"?study={quote(study)}" if page.NEEDS_STUDY else "")
        links.append(dcc.Link(page.TITLE, href=href))
    if study:
        links.append(html.Span(f"study: {study}", className="note"))
    return html.Div(links, className="sw-nav")


def create_app(url: str | None = None, *, token: str | None = None, refresh_ms: int = 2000, db=None,
               partial_plotly: bool = True) -> Dash:  # fmt: skip
    """The dashboard over the database at `url` (or an open `db`), read through read-only sessions only.

    `partial_plotly`: serve sweeper's partial plotly.js bundle instead of the full plotly.min.js where
    it can stand in (see `sweeper.dashboard.plotly_bundle`); `app.sweeper_partial_plotly` says if it does.
    """
    ctx = Context(db=db if db is not None else open_readonly(url), refresh_ms=refresh_ms)
    pages = page_modules()
    routes = {page.PATH: page for page in pages}
    app = Dash(
        __name__, title="sweeper", use_pages=False, enable_mcp=False, suppress_callback_exceptions=True,
        serve_locally=True, update_title=None,
    )  # fmt: skip
    app.index_string = app.index_string.replace("{%css%}", "{%css%}<style>" + CSS + "</style>")
    # dcc.Graph fetches plotly.js only once a graph is on the page (after the routing callback);
    # preloading it lets the browser fetch and compile it while the callback runs. Only the pages
    # that draw graphs preload it: a preload left unused draws a console warning in Chromium.
    preload = f'<link rel="preload" as="script" href="{plotly_bundle.PLOTLY_URL_SUFFIX}">'
    graph_paths = set(routes) - {studies_page.PATH, table_page.PATH}
    plain_index = app.interpolate_index

    def _index_with_preload(**kwargs):
        page = plain_index(**kwargs)
        return page.replace("</head>", preload + "</head>", 1) if request.path in graph_paths else page

    app.interpolate_index = _index_with_preload
    app.layout = html.Div([dcc.Location(id="url"), html.Div(id="nav"), html.Div(id="page")])
    security.guard(app.server, token)  # first: every other hook and route runs only for allowed requests
    app.sweeper_partial_plotly = partial_plotly and plotly_bundle.install(app.server)
    ctx.frontier_cache = views.FrontierCache(ctx.db)

    @app.server.before_request
    def _prefetch_frontier():  # a frontier page's HTML: build its figure while the browser runs the scripts
        if request.method == "GET" and request.path == frontier_page.PATH and request.args.get("study"):
            ctx.frontier_cache.prefetch(request.args["study"])

    @app.callback(Output("nav", "children"), Output("page", "children"), Input("url", "pathname"), Input("url", "search"))
    def _route(pathname, search):
        query = {k: v[0] for k, v in parse_qs((search or "").lstrip("?")).items()}
        query.pop(security.PARAM, None)
        page = routes.get(pathname or "/")
        if page is None:
            return _nav(pages, query), html.Div([html.H2("Not found"), dcc.Link("studies", href="/")])
        if page.NEEDS_STUDY and not query.get("study"):
            return _nav(pages, query), html.P(["Pick a study first: ", dcc.Link("studies", href="/")])
        try:
            return _nav(pages, query), page.layout(ctx, query)
        except StudyNotFound as e:
            return _nav(pages, {}), html.P(str(e))

    for page in pages:
        page.register(app, ctx)
    app.sweeper_context = ctx
    return app


def serve(url: str | None = None, host: str = "127.0.0.1", port: int = 8050, token: str | None = None,
          debug: bool = False) -> None:  # fmt: skip
    """Check the binding (see `security.check_bind`), then serve until interrupted."""
    security.check_bind(host, token)
    app = create_app(url, token=token)
    views.warm_up()
    app.run(host=host, port=port, debug=debug)
