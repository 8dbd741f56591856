"""Signing in to the dashboard with an API token, and CSRF protection for its forms.

The session cookie is signed (Flask's ``SECRET_KEY``), HttpOnly and SameSite=Strict, but its
content is readable by whoever holds it, so it never carries the token's secret: it carries the
token's name and an HMAC of the secret under the session key. Every request re-checks that proof
against the configured tokens, so removing or rotating a token in the settings ends its
dashboard sessions too. Each session has its own random CSRF token, sent back in a hidden field
of every form and compared in constant time, and its own random id: signing out revokes that id
in the store, so a copy of the cookie stops working on every web process.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from flask import session

from scheduling.flask.api.auth import KnownToken, match_token

__all__ = [
    "CSRF_FIELD",
    "SignedIn",
    "csrf_token",
    "csrf_valid",
    "current_user",
    "safe_next",
    "sign_in",
    "sign_out",
]

CSRF_FIELD = "csrf_token"
_USER = "periodic_token_name"
_PROOF = "periodic_token_proof"
_CSRF = "periodic_csrf"
_SID = "periodic_session_id"


@dataclass(frozen=True)
class SignedIn:
    name: str
    scope: Literal["read", "write"]
    session_id: str = ""
    """Random per sign-in; signing out revokes it in the store (see `sign_out`)."""

    @property
    def can_act(self) -> bool:
        return self.scope == "write"


def _proof(token: KnownToken, key: bytes) -> str:
    return hmac.new(key, b"dashboard-session:" + token.secret, hashlib.sha256).hexdigest()


def sign_in(presented: str, tokens: Sequence[KnownToken], key: bytes) -> SignedIn | None:
    """Start a fresh session for the token whose secret is `presented`; None if none matches."""
    token = match_token(presented.strip(), tokens) if presented.strip() else None
    if token is None:
        return None
    session.clear()
    session.permanent = True
    session[_USER] = token.name
    session[_PROOF] = _proof(token, key)
    session[_CSRF] = secrets.token_urlsafe(32)
    session[_SID] = secrets.token_urlsafe(24)
    return SignedIn(token.name, token.scope, session[_SID])


def sign_out() -> str | None:
    """End the session here; return its id, for the caller to revoke it everywhere."""
    session_id = session.get(_SID)
    session.clear()
    return session_id if isinstance(session_id, str) else None


def current_user(tokens: Sequence[KnownToken], key: bytes) -> SignedIn | None:
    """The signed-in token, if the session's proof still matches a configured token."""
    name, proof, session_id = session.get(_USER), session.get(_PROOF), session.get(_SID)
    if not isinstance(name, str) or not isinstance(proof, str) or not isinstance(session_id, str):
        return None
    for token in tokens:
        if token.name == name and hmac.compare_digest(proof, _proof(token, key)):
            return SignedIn(token.name, token.scope, session_id)
    return None


def csrf_token() -> str:
    """This session's CSRF token (made on first use, so the login form has one too)."""
    value = session.get(_CSRF)
    if not isinstance(value, str):
        value = secrets.token_urlsafe(32)
        session[_CSRF] = value
    return value


def csrf_valid(submitted: str | None) -> bool:
    expected = session.get(_CSRF)
    if not isinstance(expected, str) or not submitted:
        return False
    return hmac.compare_digest(submitted.encode(), expected.encode())


def safe_next(target: str | None, default: str = "/") -> str:
    """A same-site path to go back to; anything else is the default.

    Checked after normalising as a browser would: browsers drop tabs and newlines from URLs
    and read ``\\`` as ``/``, so ``/\t/evil.example`` is ``//evil.example``, another host.
    Control characters and backslashes are therefore refused outright (they also cannot go
    into a Location header), then the path must have no scheme or host and start with one ``/``.
    """
    if not target or any(ord(char) < 0x20 or ord(char) == 0x7F for char in target):
        return default
    if "\\" in target or not target.startswith("/") or target.startswith("//"):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target
