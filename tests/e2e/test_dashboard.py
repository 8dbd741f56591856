"""The dashboard in a real headless Chromium against the whole stack as ``nox -s serve`` runs it.

A person signs in with the development token, sees the shipped entries, starts a run and watches
it succeed, pauses an entry and beat stops dispatching it (while another entry keeps going, which
proves beat was alive the whole time), resumes it, and a read-only token can only look. The page
is saved as test-artifacts/dashboard.png.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from scheduling.config.loading import load_settings
from tests.e2e.stack import REPO, SHIPPED_SETTINGS, ServeProcess, running_serve

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts"
READ_SECRET = "read-only-e2e-token-0123456789abcdef"
FAST_ENTRIES = """
[schedule.e2e-tick]
task = "scheduling.tasks.heartbeat.heartbeat"
every = "2s"
catchup = "skip"
description = "Paused and resumed by the end-to-end test."

[schedule.e2e-tock]
task = "scheduling.tasks.heartbeat.heartbeat"
every = "2s"
catchup = "skip"
description = "Keeps running: proves beat ticks while e2e-tick is paused."
"""
PROPAGATION = timedelta(seconds=2)
"""A pause reaches the leader within [beat].sync_interval (1 s); one more tick of slack."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            "the dashboard test drives Debian's Chromium: apt-get install chromium", pytrace=False
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def stack(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    tokens = json.dumps([{"name": "viewer", "secret": READ_SECRET, "scope": "read"}])
    with running_serve(
        tmp_path_factory.mktemp("dashboard") / "stack",
        broker_url,
        extra_env={"PERIODIC_API__TOKENS": tokens},
        extra_settings=FAST_ENTRIES,
    ) as serve:
        serve.wait_until_ready()
        yield serve


def api(serve: ServeProcess, path: str) -> Any:
    url = serve.base_url + "/api/v1" + path  # always http://127.0.0.1:<port>
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {serve.token()}"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.load(response)


def slot_runs(serve: ServeProcess, entry: str) -> list[dict[str, Any]]:
    """Runs beat dispatched for `entry` (not "run now"), newest first."""
    items = api(serve, f"/schedules/{entry}/runs?limit=200")["items"]
    return [run for run in items if not run["manual"]]


def scheduled(run: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(run["scheduled_for"].replace("Z", "+00:00"))


def await_condition(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.25)


def sign_in(page: Page, serve: ServeProcess, secret: str) -> None:
    page.goto(serve.base_url + "/")
    expect(page.get_by_role("heading", name="Sign in to Periodic")).to_be_visible()
    page.get_by_label("API token").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


def test_a_person_signs_in_runs_and_pauses_entries(stack: ServeProcess, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    try:
        page.goto(stack.base_url + "/")
        page.get_by_label("API token").fill("not-a-token-at-all")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("That token is not valid")

        sign_in(page, stack, stack.token())
        cookie = next(c for c in context.cookies() if c["name"] == "periodic_session")
        assert cookie["httpOnly"]
        assert cookie["sameSite"] == "Strict"

        # The shipped entries, with their schedule in words (beat syncs them at start).
        for name in load_settings(SHIPPED_SETTINGS).schedule:
            expect(page.locator(f'tr[data-entry="{name}"]')).to_be_visible(timeout=30_000)
        heartbeat = page.locator('tr[data-entry="heartbeat"]')
        expect(heartbeat).to_contain_text("every 30 seconds")
        expect(heartbeat).to_contain_text("high")
        expect(page.locator('tr[data-entry="nightly-heartbeat"]')).to_contain_text("low")
        expect(page.get_by_role("heading", name="Queues")).to_be_visible()
        expect(page.locator("#live-beat")).to_contain_text("Leader", timeout=30_000)

        # Run now: the run shows up and succeeds (the page refreshes itself).
        page.get_by_role("button", name="Run now nightly-heartbeat", exact=True).click()
        flash = page.get_by_role("status").filter(has_text="Started nightly-heartbeat")
        expect(flash).to_be_visible()
        match = re.search(r"task ([0-9a-f-]{36})", flash.inner_text())
        assert match, flash.inner_text()
        run_row = page.locator(f'#live-runs tr[data-task-id="{match.group(1)}"]')
        expect(run_row).to_contain_text("succeeded", timeout=60_000)
        expect(page.locator('tr[data-entry="nightly-heartbeat"]')).to_contain_text(
            "succeeded", timeout=30_000
        )

        # Pause: beat stops dispatching e2e-tick while e2e-tock keeps running.
        await_condition(lambda: len(slot_runs(stack, "e2e-tick")) >= 1, "e2e-tick to run")
        page.get_by_role("button", name="Pause e2e-tick", exact=True).click()
        paused_at = datetime.now(UTC)
        tick_row = page.locator('tr[data-entry="e2e-tick"]')
        expect(tick_row).to_contain_text("paused")
        expect(page.get_by_role("button", name="Resume e2e-tick", exact=True)).to_be_visible()
        cutoff = paused_at + PROPAGATION
        await_condition(
            lambda: sum(scheduled(r) > cutoff for r in slot_runs(stack, "e2e-tock")) >= 3,
            "beat to dispatch three more e2e-tock slots",
        )
        late_ticks = [r for r in slot_runs(stack, "e2e-tick") if scheduled(r) > cutoff]
        assert late_ticks == [], f"beat dispatched a paused entry: {late_ticks}"

        page.reload()
        expect(page.locator('tr[data-entry="nightly-heartbeat"]')).to_contain_text("succeeded")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

        # Resume: dispatching starts again from the next slot.
        page.get_by_role("button", name="Resume e2e-tick", exact=True).click()
        resumed_at = datetime.now(UTC)
        expect(tick_row).to_contain_text("active")
        await_condition(
            lambda: any(scheduled(r) > resumed_at for r in slot_runs(stack, "e2e-tick")),
            "e2e-tick to run again after resume",
        )

        # The entry page lists its runs.
        page.get_by_role("link", name="e2e-tick", exact=True).first.click()
        expect(page.get_by_role("heading", name="e2e-tick", exact=True)).to_be_visible()
        expect(page.get_by_role("heading", name="Next fire times")).to_be_visible()
        expect(page.locator("table.runs tbody tr").first).to_contain_text("succeeded")

        # A form posted without this session's CSRF token changes nothing.
        refused = context.request.post(
            stack.base_url + "/entries/e2e-tock/pause", form={"back": "/"}
        )
        assert refused.status == 400
        assert api(stack, "/schedules/e2e-tock")["status"]["paused"] is False
    finally:
        context.close()


def test_a_read_token_sees_but_cannot_act(stack: ServeProcess, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        sign_in(page, stack, READ_SECRET)
        expect(page.locator('tr[data-entry="heartbeat"]')).to_be_visible(timeout=30_000)
        expect(page.get_by_role("button", name=re.compile("^(Run now|Pause)"))).to_have_count(0)
        expect(page.locator('tr[data-entry="heartbeat"]')).to_contain_text("read-only")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"))

        csrf = page.locator('input[name="csrf_token"]').first.get_attribute("value")
        refused = context.request.post(
            stack.base_url + "/entries/heartbeat/pause", form={"csrf_token": csrf or ""}
        )
        assert refused.status == 403
        assert api(stack, "/schedules/heartbeat")["status"]["paused"] is False
    finally:
        context.close()


def test_the_api_docs_page_renders_under_its_csp_without_a_cdn(
    stack: ServeProcess, browser: Browser
) -> None:
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    hosts: set[str] = set()
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    page.on("request", lambda request: hosts.add(request.url.split("/")[2]))
    try:
        page.goto(stack.base_url + "/api/v1/docs")
        expect(page.get_by_text("Periodic API").first).to_be_visible()
        expect(
            page.locator('.opblock-summary-path[data-path="/api/v1/schedules/{name}/run"]')
        ).to_be_visible()
        expect(page.get_by_text("Warning")).to_have_count(0)
        page.get_by_role("button", name="Authorize").first.click()
        page.screenshot(path=str(ARTIFACTS / "api-docs.png"))
    finally:
        context.close()
    assert hosts == {stack.base_url.split("/")[2]}
    assert not [text for text in errors if "Content Security Policy" in text], errors
