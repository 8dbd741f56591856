"""The dashboard's pages and buttons: ``/``, ``/entries/<name>``, sign-in, pause/resume/run now.

Server-rendered HTML; buttons are plain forms that POST and redirect back (so they work without
JavaScript), and a little script refreshes the live parts of the page. Reads and writes go
through `scheduling.flask.dashboard.overview` and `scheduling.operations.entries`, the same
functions the API uses,
run off the event loop with `run_blocking`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from zoneinfo import ZoneInfo

from flask import (
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue

from scheduling.errors import EntryNotFound, StoreError
from scheduling.flask.api.auth import KnownToken, known_tokens
from scheduling.flask.api.queues import queue_overview
from scheduling.flask.asyncio_bridge import AsyncBlueprint, run_blocking
from scheduling.flask.dashboard import display
from scheduling.flask.dashboard.overview import EntryPage, load_entry_page, load_overview
from scheduling.flask.dashboard.sessions import (
    CSRF_FIELD,
    SignedIn,
    csrf_token,
    csrf_valid,
    current_user,
    safe_next,
    sign_in,
    sign_out,
)
from scheduling.flask.services import Services, current_services
from scheduling.operations import entries as operations
from scheduling.operations.entries import BrokerUnavailable, QueueView
from scheduling.operations.explain import Explanation, explain_slot

__all__ = [
    "DISABLED_KEY",
    "actor",
    "dashboard",
    "guard",
    "may_act",
    "problem_page",
    "protect",
    "signed_in_user",
]

logger = logging.getLogger(__name__)

dashboard = AsyncBlueprint(
    "periodic",
    __name__,
    template_folder="../templates",
    static_folder="../static",
    static_url_path="/static",
)
DISABLED_KEY = "PERIODIC_DASHBOARD_DISABLED"
PUBLIC_ENDPOINTS = frozenset({"periodic.login", "periodic.static"})
"""The sign-in page and its stylesheet and script (not secret) need no session."""
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


def _now() -> datetime:
    return datetime.now(UTC)


def _tokens() -> tuple[KnownToken, ...]:
    return known_tokens(current_services().settings.api.tokens)


def _key() -> bytes:
    key = current_app.secret_key
    return key.encode() if isinstance(key, str) else bytes(key or b"")


def _problem_page(status: int, title: str, message: str, hint: str = "") -> ResponseReturnValue:
    return (
        render_template("problem.html", title=title, message=message, hint=hint, status=status),
        status,
    )


def csrf_field_name() -> str:
    return CSRF_FIELD


# Globals rather than a context processor: the macros in _macros.html are imported without
# the render context, and they need these too.
for _helper in (
    csrf_field_name,
    csrf_token,
    display.local_time,
    display.relative,
    display.duration,
    display.state_tone,
    display.history_lines,
):
    dashboard.add_app_template_global(_helper)


@dashboard.before_request
def guard() -> ResponseReturnValue | None:
    """Disabled without a session key; sign-in first; a valid CSRF token on every POST."""
    disabled = current_app.config.get(DISABLED_KEY)
    if disabled:
        return _problem_page(503, "Dashboard disabled", disabled, "The API keeps working.")
    if request.method == "POST" and not csrf_valid(request.form.get(CSRF_FIELD)):
        return _problem_page(
            400,
            "This form has expired",
            "The page was open too long or the session changed, so the action was not taken.",
            "Go back, reload the page and try again.",
        )
    user = current_user(_tokens(), _key())
    if user is not None and _revoked(user):
        sign_out()
        user = None
    g.dashboard_user = user
    if user is None and request.endpoint not in PUBLIC_ENDPOINTS:
        return redirect(url_for("periodic.login", next=request.full_path.rstrip("?")))
    return None


def _revoked(user: SignedIn) -> bool:
    """Signed out elsewhere (a copied cookie). A store that does not answer cannot say so: the
    session, still bound to a configured token, goes on rather than locking everyone out."""
    try:
        return current_services().store.session_revoked(user.session_id)
    except StoreError as error:
        logger.warning("cannot check dashboard session revocation: %s", error)
        return False


@dashboard.after_request
def protect(response: ResponseReturnValue) -> ResponseReturnValue:
    headers = getattr(response, "headers", None)
    if headers is not None:
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Cache-Control", "no-store")
    return response


def _user() -> SignedIn:
    user = g.dashboard_user
    assert isinstance(user, SignedIn)
    return user


# --- signing in ------------------------------------------------------------------------------


@dashboard.route("/login", methods=["GET", "POST"])
async def login() -> ResponseReturnValue:
    target = safe_next(request.values.get("next"), url_for("periodic.index"))
    if request.method == "GET":
        if g.dashboard_user is not None:
            return redirect(target)
        return render_template("login.html", next=target, error=None)
    user = sign_in(request.form.get("token", ""), _tokens(), _key())
    if user is None:
        error = "That token is not valid. Use a token from [api].tokens in the settings"
        if current_services().settings.app.environment == "development":
            error += " (nox -s serve prints the development token and keeps it in var/dev-token)"
        return render_template("login.html", next=target, error=error + "."), 401
    logger.info("dashboard sign-in with token %r (%s)", user.name, user.scope)
    return redirect(target)


@dashboard.post("/logout")
async def logout() -> ResponseReturnValue:
    session_id = sign_out()
    if session_id is not None:
        now = _now()
        lifetime = current_app.permanent_session_lifetime
        try:
            await run_blocking(
                current_services().store.revoke_session, session_id, now + lifetime, now
            )
        except StoreError as error:
            logger.warning(
                "sign-out not recorded in the store (cookie copies stay valid): %s", error
            )
    return redirect(url_for("periodic.login"))


# --- pages -----------------------------------------------------------------------------------


async def _queues(services: Services) -> tuple[list[QueueView], str | None]:
    try:
        return await queue_overview(services), None
    except BrokerUnavailable:
        return [], (
            "The broker does not answer, so queue depths are unknown and runs cannot be "
            "dispatched. Check that RabbitMQ runs and [broker].url is right."
        )
    except StoreError:
        return [], "The schedule store cannot be reached."


@dashboard.get("/")
async def index() -> ResponseReturnValue:
    services = current_services()
    now = _now()
    after = request.args.get("after") or None

    def read() -> object:
        return load_overview(services.store, services.settings, after=after, now=now)

    results = await asyncio.gather(run_blocking(read), _queues(services), return_exceptions=True)
    overview, queues = results
    if isinstance(overview, StoreError):
        return _store_down(overview)
    if isinstance(overview, BaseException):
        raise overview
    if isinstance(queues, BaseException):
        raise queues
    queue_list, queue_problem = queues
    return render_template(
        "overview.html",
        o=overview,
        queues=queue_list,
        queue_problem=queue_problem,
        user=_user(),
        settings=services.settings,
        after=after,
        page_path=request.full_path.rstrip("?"),
    )


@dashboard.get("/entries/<name>")
async def entry(name: str) -> ResponseReturnValue:
    services = current_services()
    now = _now()
    asked = request.args.get("at", "").strip()

    def read() -> tuple[EntryPage, Explanation | str | None]:
        page = load_entry_page(services.store, services.settings, name, now)
        if not asked:
            return page, None
        instant = _asked_instant(asked, page.view.timezone)
        if instant is None:
            return page, f"{asked!r} is not a date and time (use the picker, or ISO-8601)."
        return page, explain_slot(services.store, services.settings, name, instant, now)

    try:
        page, explanation = await run_blocking(read)
    except EntryNotFound:
        return _problem_page(
            404,
            "No such entry",
            f"There is no schedule entry named {name!r}.",
            "It may have been removed from settings.toml or deleted through the API.",
        )
    except StoreError as error:
        return _store_down(error)
    return render_template(
        "entry.html",
        p=page,
        explanation=explanation,
        asked=asked,
        source=services.source,
        now=now,
        user=_user(),
        settings=services.settings,
        page_path=request.path,
    )


def _asked_instant(text: str, zone: str) -> datetime | None:
    """The "why did it (not) run?" instant: a picker's wall time in the entry's zone, or ISO."""
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        return None
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=ZoneInfo(zone))
    return instant.astimezone(UTC)


def _store_down(error: StoreError) -> ResponseReturnValue:
    logger.warning("dashboard: store unavailable: %s", error)
    return _problem_page(
        503,
        "The schedule store cannot be reached",
        "Entries and runs live in the database named by [app].database_url, which does not answer.",
        "Check that the database runs and the URL is right; this page works again once it does.",
    )


# --- actions ---------------------------------------------------------------------------------


def _back() -> ResponseReturnValue:
    return redirect(safe_next(request.form.get("back"), url_for("periodic.index")))


def _actor() -> str:
    """Who the entry's history names for a dashboard action: the signed-in token's name."""
    return f"dashboard:{_user().name}"


def _may_act() -> ResponseReturnValue | None:
    user = _user()
    if not user.can_act:
        return _problem_page(
            403,
            "Read-only token",
            f"You are signed in with {user.name!r}, a read token: it can look but not act.",
            "Sign in with a write token to pause, resume or run entries.",
        )
    return None


@dashboard.post("/entries/<name>/pause")
async def pause(name: str) -> ResponseReturnValue:
    services = current_services()
    return await _change_entry(
        name,
        partial(operations.pause_entry, services.store, name, _actor()),
        verb="paused",
        done=f"Paused {name}: beat dispatches no new runs until you resume it.",
    )


@dashboard.post("/entries/<name>/resume")
async def resume(name: str) -> ResponseReturnValue:
    services = current_services()
    return await _change_entry(
        name,
        partial(operations.resume_entry, services.store, services.settings, name, _now(), _actor()),
        verb="resumed",
        done=f"Resumed {name}: it runs again from its next slot (missed slots are skipped).",
    )


async def _change_entry(
    name: str, change: Callable[[], object], *, verb: str, done: str
) -> ResponseReturnValue:
    """Pause or resume for a write session, with a message a person can act on either way."""
    refused = _may_act()
    if refused is not None:
        return refused
    try:
        await run_blocking(change)
    except EntryNotFound:
        flash(f"There is no entry named {name!r} any more.", "error")
    except StoreError:
        flash(f"{name} was not {verb}: the store cannot be reached. Try again shortly.", "error")
    else:
        logger.info("dashboard: %s %s %s", _user().name, verb, name)
        flash(done, "ok")
    return _back()


@dashboard.post("/entries/<name>/run")
async def run_entry_now(name: str) -> ResponseReturnValue:
    refused = _may_act()
    if refused is not None:
        return refused
    try:
        # The same group-committed path as the API's POST /run: one rule when unconfirmed.
        # Blocking on purpose, as the API's: this thread's loop serves this one request.
        run = current_services().run_now(name, _actor())
    except EntryNotFound:
        flash(f"There is no entry named {name!r} any more.", "error")
    except BrokerUnavailable:
        flash(
            f"{name} was not started: the broker did not confirm the message. "
            "Check that RabbitMQ runs, then try again.",
            "error",
        )
    except StoreError:
        flash(f"{name} was not started: the store cannot be reached. Try again shortly.", "error")
    else:
        logger.info("dashboard: %s ran %s now (task %s)", _user().name, name, run.task_id)
        flash(f"Started {name} (task {run.task_id}); its state appears below.", "ok")
    return _back()


# Shared with the entry editor (`scheduling.flask.dashboard.editor`), its own blueprint.
actor = _actor
may_act = _may_act
problem_page = _problem_page
signed_in_user = _user
