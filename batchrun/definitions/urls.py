"""Redis URLs: which kinds batchrun accepts, what they name, and how they are shown.

A URL may carry a password (`redis://user:password@host`, `?password=`), and
URLs travel into error messages, logs and status output. So everything that
shows a URL, or text that may contain one, passes it through `redact` first:
the password becomes `***`, everything else stays, so a reader can still see
which server was meant.

Besides redis-py's own schemes, two name several hosts:

    redis+sentinel://[user:password@]host:port[,host:port...]/service_name[/db]
    redis+cluster://[user:password@]host:port[,host:port...]

(`rediss+sentinel://` and `rediss+cluster://` speak TLS.)
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

PLAIN_SCHEMES = ("redis://", "rediss://", "unix://")
MULTI_SCHEMES = ("redis+sentinel://", "rediss+sentinel://", "redis+cluster://", "rediss+cluster://")
SCHEMES = PLAIN_SCHEMES + MULTI_SCHEMES
MASK = "***"

# scheme://user:password@  (the password may hold anything but '@' or whitespace; the last '@' ends it)
_USERINFO = re.compile(r"([a-z][a-z0-9+.-]*://[^:@/\s]*):(\S*)@(?=[^@\s]*(?:\s|$))", re.IGNORECASE)
_QUERY_SECRET = re.compile(r"([?&](?:password|sentinel_password)=)[^&\s]*", re.IGNORECASE)


def redact(text: str, *secrets: str | None) -> str:
    """`text` with every URL's password masked, and each of `secrets` (a password found earlier) too."""
    text = _USERINFO.sub(lambda m: f"{m.group(1)}:{MASK}@", text)
    text = _QUERY_SECRET.sub(lambda m: m.group(1) + MASK, text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


@dataclass(frozen=True)
class MultiHostUrl:
    """A Sentinel or Cluster URL, taken apart."""

    kind: str  # "sentinel" or "cluster"
    tls: bool
    hosts: tuple[tuple[str, int], ...]
    username: str | None
    password: str | None
    service: str = ""
    db: int = 0


def password_of(url: str) -> str | None:
    """The password a URL carries in its user part, if any (for redacting redis-py's messages)."""
    match = _USERINFO.match(url)
    return unquote(match.group(2)) if match and match.group(2) else None


def parse_multi(url: str) -> MultiHostUrl:
    """Take a redis+sentinel:// or redis+cluster:// URL apart; ValueError (password masked) if malformed."""
    scheme, _, rest = url.partition("://")
    if f"{scheme}://" not in MULTI_SCHEMES:
        raise ValueError(f"not a Sentinel or Cluster URL: {redact(url)}")
    kind = scheme.split("+")[1]
    userinfo, at, location = rest.rpartition("@")
    username, password = _userinfo(userinfo) if at else (None, None)
    hostlist, _, path = location.partition("/")
    hosts = tuple(_host(item, url) for item in hostlist.split(","))
    parts = [p for p in path.split("/") if p]
    if kind == "cluster" and parts:
        raise ValueError(f"a Cluster URL names hosts only (Cluster has one database): {redact(url)}")
    if kind == "sentinel" and not 1 <= len(parts) <= 2:
        raise ValueError(f"a Sentinel URL ends with /service_name[/db]: {redact(url)}")
    if len(parts) == 2 and not parts[1].isdigit():
        raise ValueError(f"the database after the service name must be a number: {redact(url)}")
    return MultiHostUrl(kind, scheme.startswith("rediss"), hosts, username, password,
                        service=unquote(parts[0]) if parts else "", db=int(parts[1]) if len(parts) == 2 else 0)


def _userinfo(text: str) -> tuple[str | None, str | None]:
    user, colon, password = text.partition(":")
    return (unquote(user) or None), (unquote(password) if colon else None)


def _host(item: str, url: str) -> tuple[str, int]:
    host, colon, port = item.strip().rpartition(":")
    if not colon or not host or not port.isdigit():
        raise ValueError(f"expected host:port, got {item!r} in {redact(url)}")
    return host.strip("[]"), int(port)
