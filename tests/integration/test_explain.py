""" "Why did it (not) run?": one test per reason, from real ledger rows, history and lease terms.

The store only lets the present be written (rows are claimed now, history is stamped now), so
the tests ask about slots *after* the real present with `now` moved ahead: every fact they
rely on is then as old as it would be in production. Leadership terms are written through the
same `acquire_lease`/`release_lease` calls beat makes, at the instants the test chooses.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from scheduling.config.settings import ScheduleEntry, Settings
from scheduling.errors import EntryNotFound
from scheduling.flask.cli import schedule
from scheduling.operations.explain import Explanation, explain_slot
from scheduling.store import LeaseRecord, RunState, SlotClaim, Store
from scheduling.timing.slots import slot_task_id
from tests.support.api import HEARTBEAT, READ, WRITE
from tests.support.beats import beat_settings_text, unique_queues

pytestmark = pytest.mark.integration

HOUR = timedelta(hours=1)
SETTINGS = Settings()
T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + HOUR
"""The first whole hour after the real present: slots from here on are after any creation."""
LATER = T0 + timedelta(days=10)


def hourly(**fields: Any) -> ScheduleEntry:
    return ScheduleEntry(task="t", every=HOUR, **fields)


def lead(store: Store, holder: str, at: datetime, ttl: timedelta) -> LeaseRecord:
    lease = store.acquire_lease(holder, ttl, at)
    assert lease is not None
    return lease


def claim(store: Store, lease: LeaseRecord, entry: str, slot: datetime, state: RunState) -> str:
    task_id = slot_task_id(entry, slot)
    claims = [SlotClaim(entry, slot, task_id, state, queue="default")]
    assert store.claim_slots(claims, holder=lease.holder, token=lease.token, next_runs={})
    return task_id


def explain(store: Store, name: str, at: datetime, now: datetime = LATER) -> Explanation:
    return explain_slot(store, SETTINGS, name, at, now)


# --- from the ledger ------------------------------------------------------------------------


def test_dispatched_names_the_task_its_lag_and_outcome(store: Store) -> None:
    store.create_entry("e", hourly(), next_run_at=None)
    lease = lead(store, "beat-a", T0, timedelta(days=30))
    task_id = claim(store, lease, "e", T0 + HOUR, RunState.PENDING)
    store.mark_dispatched([task_id], T0 + HOUR + timedelta(seconds=3))
    store.record_run_finished(
        task_id, RunState.FAILED, T0 + 2 * HOUR, runtime=1.5, error_type="KeyError",
        error_message="'x'",
    )  # fmt: skip

    answer = explain(store, "e", T0 + HOUR + timedelta(minutes=30))

    assert (answer.reason, answer.slot) == ("dispatched", T0 + HOUR)
    assert answer.facts["task_id"] == task_id
    assert answer.facts["lag_seconds"] == 3.0
    assert answer.facts["state"] == "failed"
    assert answer.facts["error"] == "KeyError: 'x'"


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (RunState.PENDING, "claimed"),
        (RunState.EXPIRED, "expired"),
        (RunState.SKIPPED, "skipped_overlap"),
    ],
)
def test_other_ledger_states(store: Store, state: RunState, reason: str) -> None:
    store.create_entry("e", hourly(overlap="skip"), next_run_at=None)
    lease = lead(store, "beat-a", T0, timedelta(days=30))
    recorded = RunState.PENDING if state is RunState.EXPIRED else state
    task_id = claim(store, lease, "e", T0, recorded)
    if state is RunState.EXPIRED:
        store.mark_dispatched([task_id], T0)
        store.record_run_finished(task_id, RunState.EXPIRED, T0 + HOUR)

    assert explain(store, "e", T0 + timedelta(minutes=5)).reason == reason


def test_missed_past_the_grace(store: Store) -> None:
    store.create_entry("e", hourly(misfire_grace=HOUR), next_run_at=None)
    lease = lead(store, "beat-a", T0 - timedelta(days=2), timedelta(days=30))
    slot = T0 - 4 * HOUR  # recorded now, more than an hour after it fell due
    claim(store, lease, "e", slot, RunState.MISSED)

    answer = explain(store, "e", slot, now=T0)

    assert answer.reason == "missed"
    assert answer.facts["rule"] == "misfire_grace"
    assert answer.facts["cause"] == "leader_could_not_dispatch"


def test_missed_while_no_beat_led(store: Store) -> None:
    store.create_entry("e", hourly(catchup="latest"), next_run_at=None)
    slot = T0 + 5 * HOUR
    lease = lead(store, "beat-a", slot - 2 * HOUR, timedelta(minutes=10))
    claim(store, lease, "e", slot, RunState.MISSED)
    lead(store, "beat-b", slot + HOUR, timedelta(minutes=10))  # takes the lapsed lease over

    answer = explain(store, "e", slot)

    assert answer.reason == "missed"
    assert answer.facts["rule"] == "catchup_latest"
    assert answer.facts["cause"] == "beat_down"
    assert answer.facts["leaderless_from"] == _z(slot - 2 * HOUR + timedelta(minutes=10))
    assert answer.facts["leaderless_until"] == _z(slot + HOUR)


# --- without a ledger row -------------------------------------------------------------------


def test_not_yet_due_and_due(store: Store) -> None:
    store.create_entry("e", hourly(), next_run_at=None)
    lead(store, "beat-a", T0, timedelta(days=30))
    now = T0 + 3 * HOUR + timedelta(seconds=20)

    assert explain(store, "e", now + 2 * HOUR, now=now).reason == "not_yet_due"
    assert explain(store, "e", now, now=now).reason == "due"


def test_no_beat_led_at_the_slot(store: Store) -> None:
    store.create_entry("e", hourly(), next_run_at=None)
    lead(store, "beat-a", T0, HOUR)  # led one hour, then vanished

    answer = explain(store, "e", T0 + 5 * HOUR)

    assert answer.reason == "beat_down"
    assert answer.facts == {"leaderless_from": _z(T0 + HOUR), "leaderless_until": None}


def test_released_lease_ends_the_term(store: Store) -> None:
    store.create_entry("e", hourly(), next_run_at=None)
    lease = lead(store, "beat-a", T0 - HOUR, timedelta(days=30))
    store.release_lease(lease.holder, lease.token)  # clean shutdown, now

    assert explain(store, "e", T0 + 5 * HOUR).reason == "beat_down"


def test_paused_names_who_and_since_when(store: Store) -> None:
    store.create_entry("e", hourly(), next_run_at=None)
    store.set_paused("e", True, actor="dashboard:ana")
    lead(store, "beat-a", T0, timedelta(days=30))

    answer = explain(store, "e", T0 + 2 * HOUR)

    assert answer.reason == "paused"
    assert answer.facts["by"] == "dashboard:ana"


def test_resumed_entry_is_not_paused(store: Store) -> None:
    store.create_entry("e", hourly(), next_run_at=None)
    store.set_paused("e", True, actor="a")
    store.set_paused("e", False, actor="a")
    lead(store, "beat-a", T0, timedelta(days=30))

    assert explain(store, "e", T0 + 2 * HOUR).reason == "due"


def test_disabled(store: Store) -> None:
    store.create_entry("e", hourly(enabled=False), next_run_at=None)

    assert explain(store, "e", T0 + 2 * HOUR).reason == "disabled"


def test_created_after_the_slot(store: Store) -> None:
    store.create_entry("e", hourly(), next_run_at=None)

    answer = explain(store, "e", T0 - 3 * HOUR, now=T0)

    assert answer.reason == "created_after"
    assert "backfill" in answer.summary


def test_before_start_and_after_end(store: Store) -> None:
    bounds = hourly(start=T0 + timedelta(days=1), end=T0 + timedelta(days=2))
    store.create_entry("e", bounds, next_run_at=None)

    assert explain(store, "e", T0 + HOUR).reason == "before_start"
    after = explain(store, "e", T0 + timedelta(days=3))
    assert after.reason == "after_end"
    assert after.slot == T0 + timedelta(days=2)


def test_max_runs_reached(store: Store) -> None:
    store.create_entry("e", hourly(max_runs=1), next_run_at=None)
    lease = lead(store, "beat-a", T0, timedelta(days=30))
    claim(store, lease, "e", T0, RunState.PENDING)

    assert explain(store, "e", T0 + 3 * HOUR).reason == "max_runs_reached"


def test_unrecorded_slot_behind_the_last_one(store: Store) -> None:
    store.create_entry("e", hourly(), next_run_at=None)
    lease = lead(store, "beat-a", T0, timedelta(days=30))
    claim(store, lease, "e", T0 + 5 * HOUR, RunState.PENDING)

    assert explain(store, "e", T0 + 2 * HOUR).reason == "unrecorded"


def test_deleted_and_never_known(store: Store) -> None:
    store.create_entry("e", hourly(), next_run_at=None)
    store.delete_entry("e", actor="token:ops")

    answer = explain(store, "e", T0)
    assert (answer.reason, answer.facts["by"]) == ("deleted", "token:ops")
    with pytest.raises(EntryNotFound):
        explain(store, "never", T0)


def test_no_slot_in_the_year_before(store: Store) -> None:
    store.create_entry("e", ScheduleEntry(task="t", at=T0 + timedelta(days=500)), next_run_at=None)

    assert explain(store, "e", T0 + timedelta(days=5)).reason == "no_slot"


# --- through the API, the CLI and the dashboard ----------------------------------------------


def test_api_explain(client: FlaskClient) -> None:
    body = {"name": "ping", "task": HEARTBEAT, "every": "1h"}
    assert client.post("/api/v1/schedules", json=body, headers=WRITE).status_code == 201

    past = client.get("/api/v1/schedules/ping/explain?at=2020-01-01T00:00:00Z", headers=READ)
    future = client.get(
        f"/api/v1/schedules/ping/explain?at={_z(datetime.now(UTC) + 3 * HOUR)}", headers=READ
    )

    assert past.status_code == 200
    assert past.get_json()["reason"] == "created_after"
    assert past.get_json()["slot"] == "2020-01-01T00:00:00Z"
    assert future.get_json()["reason"] == "not_yet_due"
    assert client.get("/api/v1/schedules/nope/explain", headers=READ).status_code == 404
    assert client.get("/api/v1/schedules/ping/explain?at=x", headers=READ).status_code == 422


def test_cli_explain(tmp_path: Path, broker_url: str) -> None:
    database_url = f"sqlite:///{tmp_path / 'periodic.db'}"
    path = tmp_path / "settings.toml"
    path.write_text(beat_settings_text(database_url, broker_url, unique_queues()))
    with Store.open(database_url) as store:
        store.create_entry("cli-e", hourly(), next_run_at=None)
    runner = CliRunner()
    command = ["explain", "cli-e", "--at", "2020-01-01T00:00:00Z", "--settings", str(path)]

    as_json = runner.invoke(schedule, [*command, "--json"])
    as_text = runner.invoke(schedule, command)

    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output)["reason"] == "created_after"
    assert as_text.exit_code == 0, as_text.output
    assert "cli-e @ 2020-01-01T00:00:00+00:00: created_after" in as_text.output
    missing = runner.invoke(schedule, ["explain", "nope", "--settings", str(path)])
    assert missing.exit_code == 2
    assert "no entry 'nope'" in missing.output


def _z(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


def test_missed_while_the_broker_was_down(store: Store) -> None:
    store.create_entry("e", hourly(catchup="latest"), next_run_at=None)
    slot = T0 + 5 * HOUR
    lease = lead(store, "beat-a", slot - 2 * HOUR, timedelta(days=1))
    outage = store.outage_began("broker", "beat-a", slot - HOUR)
    store.outage_ended(outage, slot + HOUR)
    claim(store, lease, "e", slot, RunState.MISSED)

    answer = explain(store, "e", slot)

    assert answer.facts["cause"] == "broker_down"
    assert answer.facts["broker_down_from"] == _z(slot - HOUR)
    assert answer.facts["broker_down_until"] == _z(slot + HOUR)


def test_missed_while_the_database_was_down(store: Store) -> None:
    """Recorded whole once the database answered again; named before the lapsed lease."""
    store.create_entry("e", hourly(catchup="latest"), next_run_at=None)
    slot = T0 + 5 * HOUR
    lease = lead(store, "beat-a", slot - 2 * HOUR, timedelta(minutes=30))
    store.outage_ended(None, slot + HOUR, dependency="database", beat_id="beat-a", began=slot)
    claim(store, lease, "e", slot, RunState.MISSED)

    answer = explain(store, "e", slot)

    assert (answer.reason, answer.facts["cause"]) == ("missed", "database_down")
    assert answer.facts["database_down_from"] == _z(slot)
    assert answer.facts["database_down_until"] == _z(slot + HOUR)


def test_unconfirmed_past_the_grace_is_a_grace_miss(store: Store) -> None:
    store.create_entry("e", hourly(misfire_grace=HOUR, catchup="all"), next_run_at=None)
    lease = lead(store, "beat-a", T0, timedelta(days=1))
    task_id = claim(store, lease, "e", T0 - HOUR, RunState.PENDING)
    store.record_run_finished(task_id, RunState.MISSED, T0 + HOUR, error_type="MisfireGrace")

    answer = explain(store, "e", T0 - HOUR, now=T0 + HOUR)

    assert (answer.reason, answer.facts["rule"]) == ("missed", "misfire_grace")


def test_an_outage_recorded_only_when_it_ended(store: Store) -> None:
    store.outage_ended(None, T0, dependency="broker", beat_id="b", began=T0 - HOUR)

    (outage,) = store.outages_at("broker", T0 - timedelta(minutes=30))
    assert (outage.started_at, outage.ended_at) == (T0 - HOUR, T0)
    assert store.outages_at("broker", T0 + HOUR) == []
