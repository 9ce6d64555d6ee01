"""Who may talk to the dashboard: loopback by default, a token for anything else.

- `check_bind(host, token)`: a host other than loopback is refused unless a token is given.
- `guard(server, token, host)`: a Flask `before_request` hook on the Dash server.
  With a token, every request must carry it: the `X-Sweeper-Token` header, the `token` query
  parameter (the first visit, e.g. the URL the command prints), or the cookie set on that visit
  (HttpOnly, SameSite=Strict, so another site's page cannot send it). Without one (loopback only),
  requests must name a loopback Host, which stops DNS-rebinding pages from reading the dashboard.
  Either way a cross-origin POST (another site's page calling a callback) is refused.
"""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import urlsplit

from sweeper.errors import SweeperError

HEADER = "X-Sweeper-Token"
COOKIE = "sweeper_token"
PARAM = "token"
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}


class BindRefused(SweeperError, ValueError):
    """Binding to a non-loopback address without a token."""

    field_default = "--host"


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    if token is not None and len(token) < 8:
        raise BindRefused("--token", "must be at least 8 characters "
                                     "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`)")
    if not is_loopback(host) and not token:
        raise BindRefused(
            f"refusing to bind to {host}: the dashboard is reachable from other machines there, so it needs "
            f"--token T (every request must then carry it). Bind to 127.0.0.1 (the default) to serve only this machine."
        )


def _host_name(host_header: str) -> str:
    return urlsplit(f"//{host_header}").hostname or ""


def guard(server, token: str | None) -> None:
    """Install the checks above on a Flask `server`."""
    from flask import request

    @server.before_request
    def _check():
        origin = request.headers.get("Origin")
        if request.method not in ("GET", "HEAD") and origin and urlsplit(origin).netloc != request.host:
            return "cross-origin request refused\n", 403
        if token is None:
            if not is_loopback(_host_name(request.host)):
                return "this dashboard serves only loopback hosts (see --host and --token)\n", 403
            return None
        given = request.headers.get(HEADER) or request.args.get(PARAM) or request.cookies.get(COOKIE) or ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            return f"missing or wrong token: add ?{PARAM}=... to the URL or send the {HEADER} header\n", 401
        return None

    @server.after_request
    def _remember(response):
        given = request.args.get(PARAM, "")
        if token is not None and given and hmac.compare_digest(given.encode(), token.encode()):
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response
