"""The dashboard's pages, one module each.

Each module has `PATH` (its URL path), `TITLE`, `NEEDS_STUDY`, `layout(ctx, query) -> component` (the
page for the URL's query parameters) and `register(app, ctx)` (its callbacks). `sweeper.dashboard.app`
routes between them; nothing here opens the database except through `ctx.db.read_session()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sweeper.db import Database


@dataclass
class Context:
    """What every page needs: the database (read-only sessions only) and the refresh period."""

    db: Database
    refresh_ms: int = 2000
    token_param: dict = field(default_factory=dict)
    frontier_cache: object = None
    """The server's `views.FrontierCache` (set by `create_app`)."""


def page_modules():
    from sweeper.dashboard.pages import frontier, importance, member, overlay, parallel, studies, table

    return (studies, frontier, member, overlay, importance, parallel, table)
