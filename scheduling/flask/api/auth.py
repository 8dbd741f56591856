"""Bearer tokens for `/api/v1`: ``[api].tokens`` entries with scope ``read`` or ``write``.

Reading needs any token; changing anything (POST, PUT, PATCH, DELETE) needs a write token.
No token is built in: with none configured every request is refused (``nox -s serve`` injects
a development token through ``PERIODIC_API__TOKENS``). The presented secret is compared with
every configured one in constant time, so timing tells nothing about which one nearly matched.
Only the token's name is kept for the request (``g.api_token``), never its secret.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from flask import g, request

from scheduling.config.settings import ApiToken
from scheduling.flask.api.problems import ApiProblem

__all__ = ["KnownToken", "authenticate", "known_tokens", "match_token"]

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REALM = 'Bearer realm="periodic"'


@dataclass(frozen=True)
class KnownToken:
    name: str
    secret: bytes
    scope: Literal["read", "write"]


def known_tokens(tokens: Sequence[ApiToken]) -> tuple[KnownToken, ...]:
    return tuple(
        KnownToken(token.name, token.secret.get_secret_value().encode(), token.scope)
        for token in tokens
    )


def match_token(presented: str, tokens: Sequence[KnownToken]) -> KnownToken | None:
    """The token whose secret equals `presented`; every secret is compared, match or not."""
    candidate = presented.encode()
    found = None
    for token in tokens:
        if hmac.compare_digest(candidate, token.secret):
            found = token
    return found


def _unauthorized(detail: str, error: str | None = None) -> ApiProblem:
    challenge = REALM + (f', error="{error}"' if error else "")
    return ApiProblem(
        401, "Unauthorized", detail, kind="unauthorized", headers={"WWW-Authenticate": challenge}
    )


def authenticate(tokens: Sequence[KnownToken]) -> KnownToken:
    """Check the request's bearer token against the route's need (read or write)."""
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if not header:
        raise _unauthorized("send Authorization: Bearer <token>")
    if scheme.lower() != "bearer" or not presented.strip():
        raise _unauthorized("use Authorization: Bearer <token>", "invalid_request")
    token = match_token(presented.strip(), tokens)
    if token is None:
        raise _unauthorized("the token is not valid", "invalid_token")
    if request.method not in READ_METHODS and token.scope != "write":
        raise ApiProblem(
            403,
            "Forbidden",
            f"token {token.name!r} may only read; this request needs a write token",
            kind="insufficient-scope",
            headers={"WWW-Authenticate": REALM + ', error="insufficient_scope", scope="write"'},
        )
    g.api_token = token.name
    return token
