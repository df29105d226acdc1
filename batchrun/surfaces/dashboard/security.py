"""Who may act: CSRF protection for every action, and the token a dashboard bound beyond loopback needs.

CSRF is a double-submit token: a random value in a SameSite=Strict cookie,
repeated in a hidden field of every form; another site can make a browser send
the cookie but cannot read it to fill in the field. The action token (--token
or BATCHRUN_DASHBOARD_TOKEN) is given once as ?token=... and then kept as a
cookie holding its HMAC, so the token itself never sits in the browser's
cookie jar; scripts may send it as `Authorization: Bearer ...` instead.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response

CSRF_COOKIE = "batchrun_csrf"
TOKEN_COOKIE = "batchrun_token"
LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class Guard:
    """read_only: bound beyond loopback with no token, so nobody may act."""

    token: str | None
    read_only: bool
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    @classmethod
    def for_binding(cls, host: str, token: str | None) -> "Guard":
        return cls(token=token or None, read_only=not is_loopback(host) and not token)

    def csrf_token(self, request: Request) -> str:
        """The visitor's CSRF token; a first visit gets a new one, set as a cookie by remember()."""
        token = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf", None)
        if token is None:
            token = request.state.new_csrf = secrets.token_urlsafe(24)
        return token

    def remember(self, request: Request, response: Response) -> None:
        """Set the cookies a page's forms rely on: a new CSRF token, a token given as ?token=."""
        new_csrf = getattr(request.state, "new_csrf", None)
        if new_csrf:
            response.set_cookie(CSRF_COOKIE, new_csrf, httponly=True, samesite="strict")
        given = request.query_params.get("token")
        if given and self.token and hmac.compare_digest(given, self.token):
            response.set_cookie(TOKEN_COOKIE, self._seal(given), httponly=True, samesite="strict")

    def may_act(self, request: Request) -> bool:
        """Whether this visitor may see and use the action buttons."""
        if self.read_only:
            return False
        if self.token is None:
            return True
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        sealed = request.cookies.get(TOKEN_COOKIE, "")
        return (bool(bearer) and hmac.compare_digest(bearer, self.token)) or \
            (bool(sealed) and hmac.compare_digest(sealed, self._seal(self.token)))

    async def check_action(self, request: Request) -> tuple[dict[str, str], str | None]:
        """The form's fields, and why the action is refused (None when it may go ahead)."""
        body = (await request.body()).decode("utf-8", "replace")
        form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
        if self.read_only:
            return form, "this dashboard is read-only: it is bound beyond 127.0.0.1 without --token"
        if not self.may_act(request):
            return form, "actions need the dashboard's token: open the dashboard with ?token=..."
        cookie, sent = request.cookies.get(CSRF_COOKIE, ""), form.get("csrf", "")
        if not cookie or not sent or not hmac.compare_digest(cookie, sent):
            return form, "the form's CSRF token is missing or stale: reload the page and try again"
        return form, None

    def _seal(self, token: str) -> str:
        return hmac.new(self.secret, token.encode(), hashlib.sha256).hexdigest()
