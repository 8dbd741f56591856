"""The entry editor and the run timelines in a real headless Chromium (Debian's), no mocks.

The app runs in a thread of this process (werkzeug's server, the real store on SQLite and the
real broker); no beat or worker is needed to create, preview, edit, clone and delete entries,
and the timelines are drawn from ledger rows written through the store. Screenshots go to
test-artifacts/ (desktop and phone width). Any Content-Security-Policy violation fails the test.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright
from werkzeug.serving import BaseWSGIServer, make_server

from project.app import create_app
from scheduling.config.settings import ScheduleEntry
from scheduling.store import RunState, SlotClaim, Store
from tests.e2e.stack import REPO
from tests.support.api import HEARTBEAT, WRITE_SECRET, make_settings, services, temporary_queues

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
ARTIFACTS = REPO / "test-artifacts"
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("the dashboard test drives Debian's Chromium: apt-get install chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def served(tmp_path: Path, broker_url: str) -> Iterator[tuple[str, Flask]]:
    database_url = f"sqlite:///{tmp_path / 'periodic.db'}"
    app_section = {
        "timezone": "Europe/Berlin",
        "database_url": database_url,
        "secret_key": "k" * 40,
    }
    settings = make_settings(database_url, broker_url, app=app_section)
    with temporary_queues(settings):
        app = create_app(settings)
        server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}", app
        finally:
            server.shutdown()
            thread.join(timeout=10)
            services(app).close()


def new_page(
    browser: Browser, *, phone: bool = False, script: bool = True
) -> tuple[Page, list[str]]:
    context = browser.new_context(
        viewport=PHONE if phone else {"width": 1280, "height": 900}, java_script_enabled=script
    )
    page = context.new_page()
    violations: list[str] = []

    def watch(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    page.on("console", watch)
    return page, violations


def sign_in(page: Page, base: str) -> None:
    page.goto(base + "/")
    page.get_by_label("API token").fill(WRITE_SECRET)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_create_preview_save_edit_clone_delete(served: tuple[str, Flask], browser: Browser) -> None:
    base, app = served
    page, violations = new_page(browser)
    try:
        sign_in(page, base)
        page.get_by_role("link", name="New entry").click()
        page.get_by_label("Name", exact=True).fill("e2e-payday")
        page.get_by_label("Task", exact=True).fill(HEARTBEAT)
        page.get_by_label("Cron").fill("0 25 * * *")
        page.get_by_role("button", name="Create entry").click()
        expect(page.locator("#e-cron")).to_contain_text("hour 25 is out of range 0-23")
        expect(page.get_by_label("Cron")).to_have_attribute("aria-invalid", "true")
        shot(page, "editor-errors.png")
        assert services(app).store.get_entry("e2e-payday") is None

        # Live preview (script on): words and five fire times as the fields change.
        page.get_by_label("Cron").fill("0 18 * * fri#L")
        page.get_by_label("Time zone").fill("Europe/Berlin")
        expect(page.locator("[data-preview-words]")).to_contain_text("the last Friday")
        expect(page.locator("[data-preview-times] li")).to_have_count(5)
        expect(page.locator("[data-preview-times] li").first).to_contain_text("UTC")
        page.get_by_role("button", name="Preview").click()
        expect(page.locator("[data-preview-words]")).to_contain_text("at 18:00 on the last Friday")
        shot(page, "editor-preview.png")
        page.locator("[data-preview]").screenshot(path=str(ARTIFACTS / "editor-preview-panel.png"))

        page.get_by_role("button", name="Create entry").click()
        expect(page.get_by_role("heading", name="e2e-payday")).to_be_visible()
        expect(page.locator("#history")).to_contain_text("dashboard:writer created")

        page.get_by_role("link", name="Edit").click()
        page.get_by_label("Description").fill("Pay day")
        page.get_by_role("button", name="Save changes").click()
        expect(page.locator(".lead")).to_have_text("Pay day")
        expect(page.locator("#history")).to_contain_text('description: (default) → "Pay day"')

        page.get_by_role("link", name="Clone").click()
        expect(page.get_by_label("Name", exact=True)).to_have_value("e2e-payday-copy")
        expect(page.get_by_label("Cron")).to_have_value("0 18 * * fri#L")

        page.goto(base + "/entries/e2e-payday")
        page.get_by_role("button", name="Delete").click()
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        expect(page.locator('tr[data-entry="e2e-payday"]')).to_have_count(0)
        assert services(app).store.get_entry("e2e-payday") is None
        assert violations == []
    finally:
        page.context.close()


def test_preview_button_works_without_javascript(
    served: tuple[str, Flask], browser: Browser
) -> None:
    base, _ = served
    page, _ = new_page(browser, script=False)
    try:
        sign_in(page, base)
        page.goto(base + "/new")
        page.get_by_label("Task", exact=True).fill(HEARTBEAT)
        page.get_by_label("Every").fill("90m")
        page.get_by_role("button", name="Preview").click()
        expect(page.locator("[data-preview-words]")).to_contain_text("every 90 minutes")
        expect(page.locator("[data-preview-times] li")).to_have_count(5)
    finally:
        page.context.close()


def seed_runs(store: Store) -> None:
    store.create_entry("e2e-tick", ScheduleEntry(task=HEARTBEAT, every="10m"), next_run_at=None)
    lease = store.acquire_lease("e2e-beat", timedelta(minutes=5), datetime.now(UTC))
    assert lease is not None
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=20)
    outcomes = (
        [RunState.SUCCEEDED] * 30 + [RunState.FAILED, RunState.MISSED] + [RunState.SUCCEEDED] * 8
    )
    claims = []
    for index, state in enumerate(outcomes):
        recorded = RunState.MISSED if state is RunState.MISSED else RunState.PENDING
        claims.append(
            SlotClaim("e2e-tick", base + timedelta(minutes=30 * index), f"r{index}", recorded)
        )
    store.claim_slots(claims, holder=lease.holder, token=lease.token, next_runs={})
    for index, state in enumerate(outcomes):
        if state is RunState.MISSED:
            continue
        slot = base + timedelta(minutes=30 * index)
        late = timedelta(minutes=2) if index == 35 else timedelta(seconds=1)
        store.mark_dispatched([f"r{index}"], slot + late)
        store.record_run_finished(
            f"r{index}", state, slot + late + timedelta(seconds=5), runtime=1.0 + (index % 7) * 0.8
        )


@pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])
def test_timelines_render_under_the_csp(
    served: tuple[str, Flask], browser: Browser, phone: bool
) -> None:
    base, app = served
    seed_runs(services(app).store)
    page, violations = new_page(browser, phone=phone)
    suffix = "phone" if phone else "desktop"
    try:
        sign_in(page, base)
        day = page.locator('svg[aria-label^="Runs of e2e-tick per hour"]')
        expect(day).to_be_visible()
        assert day.locator("rect.tl-failed").count() >= 1
        assert day.locator("rect").count() >= 19
        shot(page, f"timeline-overview-{suffix}.png")
        page.locator('tr[data-entry="e2e-tick"]').screenshot(
            path=str(ARTIFACTS / f"timeline-day-{suffix}.png")
        )

        page.goto(base + "/entries/e2e-tick")
        strip = page.locator("svg.timeline-strip")
        expect(strip).to_be_visible()
        expect(strip.locator("rect")).to_have_count(40)
        expect(strip.locator("rect.tl-failed")).to_have_count(1)
        expect(strip.locator("rect.tl-missed")).to_have_count(1)
        expect(strip.locator("rect.tl-late")).to_have_count(1)
        expect(page.locator("svg.timeline-runtime rect:not(.tl-axis)")).to_have_count(39)
        box = strip.bounding_box()
        assert box is not None
        assert box["width"] <= (PHONE["width"] if phone else 1280)
        assert box["height"] >= 8  # still a readable band at phone width
        shot(page, f"timeline-entry-{suffix}.png")
        page.locator("#timeline").screenshot(path=str(ARTIFACTS / f"timeline-strip-{suffix}.png"))
        assert violations == []
    finally:
        page.context.close()
