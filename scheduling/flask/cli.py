"""``flask --app project.app schedule …`` and ``queues …``: the schedule from the command line.

The `Periodic` extension registers the groups on the app it is given (never as global
``flask.commands`` entry points), and they check against that app's task registry. Exit codes:
0 valid, 1 invalid configuration or a runtime failure, 2 usage.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from celery import Celery
from flask import current_app, has_app_context
from kombu.exceptions import OperationalError

from scheduling.beat.config_watch import sync_schedule
from scheduling.broker.publisher import ConfirmedPublisher, iso_utc
from scheduling.broker.topology import declare_topology, declarer, queue_status, topology
from scheduling.celery.app import create_celery
from scheduling.config.bounds import check_instant
from scheduling.config.compiler import (
    CompiledEntry,
    compile_entries,
    compile_entry,
    dead_letter_type,
    resolve_queue,
)
from scheduling.config.imports import import_task_modules
from scheduling.config.loading import load_settings, read_toml, settings_path
from scheduling.config.registry import document_task_problems, validate_against_registry
from scheduling.config.settings import Settings
from scheduling.errors import (
    BrokerUnavailable,
    ConfigError,
    EntryNotFound,
    InvalidEntry,
    StoreError,
)
from scheduling.flask.services import PERIODIC, Services
from scheduling.operations.backfill import BackfillReport, backfill
from scheduling.operations.entries import run_now
from scheduling.operations.explain import explain_slot
from scheduling.store import EntryRecord, Store
from scheduling.timing.preview import PreviewTooCostly, preview_fire_times

Command = TypeVar("Command", bound=Callable[..., Any])

STORE_HINT = (
    "Check that the database runs and that [app].database_url (or PERIODIC_APP__DATABASE_URL) "
    "points at it, then run the command again."
)
BROKER_HINT = (
    "Point [broker].url (or PERIODIC_BROKER__URL) at a running RabbitMQ, e.g. after "
    "`docker compose up -d rabbitmq`: "
    "PERIODIC_BROKER__URL=amqp://periodic:$RABBITMQ_PASSWORD@127.0.0.1:5672/periodic; then run "
    "it again."
)


def cli_actor() -> str:
    """Who the entry's history names for a command run by hand: the operating-system user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in a bare container
        return "cli"


def settings_option(command: Command) -> Command:
    return click.option(
        "--settings",
        "settings_file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Settings file (default: $PERIODIC_SETTINGS, else ./settings.toml).",
    )(command)


def json_option(command: Command) -> Command:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(command)


def app_services() -> Services | None:
    """The services of the Flask app the command runs in (``flask --app …``), if any."""
    if has_app_context():
        found = current_app.extensions.get(PERIODIC)
        if isinstance(found, Services):
            return found
    return None


def load_checked(settings_file: Path | None, as_json: bool) -> tuple[Settings, Celery, str]:
    """Settings validated against the registry, or exit 1 with every problem listed.

    Inside an app (``flask --app …``) the registry is that app's Celery app, so a team's own
    tasks count; without ``--settings`` the app's own settings are checked. A file that does not
    validate also gets its unknown task names reported, so one run lists every problem.
    """
    services = app_services()
    try:
        if services is not None and settings_file is None:
            settings, source, celery = services.settings, services.source, services.celery
        else:
            path = settings_path(settings_file)
            try:
                settings, source = load_settings(path), str(path)
            except ConfigError as error:
                raise _with_task_problems(error, path, services) from None
            import_task_modules(settings, source)
            celery = services.celery if services is not None else create_celery(settings, source)
        validate_against_registry(settings, celery.tasks, source)
    except ConfigError as error:
        if as_json:
            click.echo(
                json.dumps({"valid": False, "source": error.source, "problems": error.problems})
            )
        else:
            click.echo(str(error), err=True)
        sys.exit(1)
    return settings, celery, source


def _with_task_problems(error: ConfigError, path: Path, services: Services | None) -> ConfigError:
    """`error` plus the file's unknown task names, each before the other problems of its entry.

    The registry is the app's when there is one, else the shipped tasks (a file that did not
    validate has no trustworthy ``[app].imports`` to import).
    """
    try:
        document = read_toml(path)
    except ConfigError:
        return error
    registry = services.celery.tasks if services is not None else Celery(set_as_current=False).tasks
    problems = list(error.problems)
    for problem in document_task_problems(document, registry):
        if problem in problems:
            continue
        table = problem.rsplit(".task:", 1)[0] + "."
        same_entry = [i for i, p in enumerate(problems) if p.startswith(table)]
        problems.insert(same_entry[0] if same_entry else len(problems), problem)
    return type(error)(error.source, problems)


def parse_instant(value: str | None, hint: str = "--after") -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not ISO-8601", param_hint=hint) from None
    if instant.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no offset; add Z or +HH:MM", param_hint=hint)
    try:
        return check_instant(instant.astimezone(UTC))
    except (ValueError, OverflowError) as error:
        message = str(error) if isinstance(error, ValueError) else "is out of range"
        raise click.BadParameter(f"{value!r} {message}", param_hint=hint) from None


def entry_row(compiled: CompiledEntry, now: datetime) -> dict[str, Any]:
    upcoming = compiled.timetable.next_after(now)
    zone = compiled.timetable.zone
    return {
        "name": compiled.name,
        "task": compiled.task,
        "schedule": compiled.timetable.describe(),
        "timezone": zone.key,
        "queue": compiled.queue,
        "enabled": compiled.entry.enabled,
        "catchup": compiled.entry.catchup,
        "overlap": compiled.entry.overlap,
        "next_run": upcoming.astimezone(zone).isoformat() if upcoming else None,
        "next_run_utc": iso_utc(upcoming) if upcoming else None,
    }


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    widths = {c: max([len(c), *(len(str(r[c])) for r in rows)]) for c in columns}
    click.echo("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        click.echo("  ".join(str(row[c]).ljust(widths[c]) for c in columns).rstrip())


@click.group()
def schedule() -> None:
    """Inspect and validate the schedule declared in settings.toml."""


@schedule.command()
@settings_option
@json_option
def check(settings_file: Path | None, as_json: bool) -> None:
    """Validate the settings against the registered tasks and print the compiled table."""
    settings, _, source = load_checked(settings_file, as_json)
    now = datetime.now(UTC)
    rows = [entry_row(compiled, now) for compiled in compile_entries(settings)]
    if as_json:
        click.echo(json.dumps({"valid": True, "source": source, "entries": rows}))
        return
    click.echo(f"{source}: valid, {len(rows)} entries, queues: {', '.join(settings.queues)}")
    if rows:
        print_table(
            rows, ["name", "task", "schedule", "timezone", "queue", "next_run", "next_run_utc"]
        )


@schedule.command(name="list")
@click.option(
    "--file",
    "from_file",
    is_flag=True,
    help="List settings.toml's entries alone, without opening the store.",
)
@settings_option
@json_option
def list_command(settings_file: Path | None, as_json: bool, from_file: bool) -> None:
    """List the store's entries (settings.toml's and the API's, SOURCE says which) with their
    schedule in words, state and next run; ``--file`` lists settings.toml alone."""
    settings, _, source = load_checked(settings_file, as_json)
    now = datetime.now(UTC)
    if from_file:
        rows = [
            {**entry_row(compiled, now), "source": "config", "paused": False}
            for compiled in compile_entries(settings)
        ]
    else:
        store = open_store(settings)
        try:
            rows = [store_row(record, settings) for record in store.all_entries()]
        except StoreError as error:
            click.echo(f"store unavailable: {error}\n{STORE_HINT}", err=True)
            sys.exit(1)
        finally:
            store.close()
    if as_json:
        click.echo(json.dumps(rows))
    elif rows:
        for row in rows:
            row["state"] = _state(row)
        print_table(rows, ["name", "source", "schedule", "timezone", "queue", "state", "next_run"])
    elif from_file:
        click.echo(f"no entries in {source}")
    else:
        click.echo("no entries in the store (`schedule sync` writes settings.toml's)")


def store_row(record: EntryRecord, settings: Settings) -> dict[str, Any]:
    """An entry as the store holds it (no ledger reads, so 100k entries list quickly)."""
    zone = settings.entry_zone(record.definition)
    try:
        compiled = compile_entry(record.name, record.definition, settings)
        schedule, queue = compiled.timetable.describe(), compiled.queue
    except (KeyError, ValueError):
        schedule, queue = record.definition.kind, resolve_queue(record.definition, settings)
    upcoming = record.next_run_at
    return {
        "name": record.name,
        "source": record.owner,
        "task": record.definition.task,
        "schedule": schedule,
        "timezone": zone.key,
        "queue": queue,
        "enabled": record.definition.enabled,
        "paused": record.paused,
        "next_run": upcoming.astimezone(zone).isoformat() if upcoming else None,
        "next_run_utc": iso_utc(upcoming) if upcoming else None,
    }


def _state(row: dict[str, Any]) -> str:
    if not row["enabled"]:
        return "disabled"
    return "paused" if row["paused"] else "active"


@schedule.command(name="next")
@click.argument("name")
@click.option("-n", "count", type=click.IntRange(1, 1000), default=5, show_default=True)
@click.option("--after", default=None, help="ISO-8601 instant with Z or an offset (default: now).")
@settings_option
@json_option
def next_fires(
    name: str, count: int, after: str | None, settings_file: Path | None, as_json: bool
) -> None:
    """The next N fire times of NAME, in the entry's zone and in UTC."""
    start = parse_instant(after)
    settings, _, source = load_checked(settings_file, as_json)
    compiled = {c.name: c for c in compile_entries(settings)}.get(name)
    if compiled is None:
        known = ", ".join(sorted(settings.schedule)) or "none"
        raise click.BadParameter(
            f"no entry {name!r} in {source} (entries: {known})", param_hint="NAME"
        )
    zone = compiled.timetable.zone
    try:
        times = preview_fire_times(compiled.timetable, start, count)
    except PreviewTooCostly as error:
        raise click.BadParameter(str(error), param_hint="-n") from None
    if as_json:
        answer = {
            "name": name,
            "timezone": zone.key,
            "fire_times": [iso_utc(t) for t in times],
            "fire_times_local": [t.astimezone(zone).isoformat() for t in times],
        }
        click.echo(json.dumps(answer))
        return
    click.echo(f"{name}: {compiled.timetable.describe()} ({zone.key})")
    for instant in times:
        utc = instant.astimezone(UTC).isoformat().replace("+00:00", "Z")
        click.echo(f"  {instant.astimezone(zone).isoformat()}  {utc}")


def open_store(settings: Settings) -> Store:
    """The configured store, or exit 1 saying why it cannot be opened."""
    try:
        return Store.open(settings.app.database_url.get_secret_value())
    except StoreError as error:
        click.echo(f"store unavailable: {error}\n{STORE_HINT}", err=True)
        sys.exit(1)


@schedule.command(name="sync")
@settings_option
@json_option
def sync_command(settings_file: Path | None, as_json: bool) -> None:
    """Write the entries of settings.toml to the store (create, update, prune); beat does too."""
    settings, _, source = load_checked(settings_file, as_json)
    store = open_store(settings)
    actor = f"settings:{source}"
    try:
        if as_json or len(settings.schedule) < 1000:
            summary = sync_schedule(store, settings, datetime.now(UTC), actor=actor)
        else:
            with click.progressbar(length=len(settings.schedule), label="syncing") as bar:
                summary = sync_schedule(
                    store, settings, datetime.now(UTC), progress=bar.update, actor=actor
                )
    except ConfigError as error:
        click.echo(str(error), err=True)
        sys.exit(1)
    except StoreError as error:
        click.echo(f"store unavailable: {error}\n{STORE_HINT}", err=True)
        sys.exit(1)
    finally:
        store.close()
    result = {
        "created": summary.created,
        "updated": summary.updated,
        "pruned": summary.pruned,
        "unchanged": summary.unchanged,
    }
    if as_json:
        click.echo(json.dumps({"source": source, **result}))
        return
    click.echo(
        f"{source}: {len(summary.created)} created, {len(summary.updated)} updated, "
        f"{len(summary.pruned)} pruned, {summary.unchanged} unchanged"
    )
    for label in ("created", "updated", "pruned"):
        names = result[label]
        if isinstance(names, list) and names:
            more = f" (+{len(names) - 20} more)" if len(names) > 20 else ""
            click.echo(f"  {label}: {', '.join(names[:20])}{more}")


@schedule.command(name="run")
@click.argument("name")
@settings_option
@json_option
def run_command(name: str, settings_file: Path | None, as_json: bool) -> None:
    """Run NAME now (a manual run in the ledger, published with confirms); print its task id."""
    settings, _, _ = load_checked(settings_file, as_json)
    store = open_store(settings)
    publisher = ConfirmedPublisher.from_settings(
        settings.broker, declare=declarer(settings), sent_events=True
    )
    try:
        run = run_now(store, publisher, settings, name, actor=cli_actor())
    except EntryNotFound:
        raise click.BadParameter(
            f"no entry {name!r} in the store (run `schedule sync` or create it through the API)",
            param_hint="NAME",
        ) from None
    except BrokerUnavailable as error:
        click.echo(f"not started: {error}; the run is recorded as revoked\n{BROKER_HINT}", err=True)
        sys.exit(1)
    except StoreError as error:
        click.echo(f"store unavailable: {error}\n{STORE_HINT}", err=True)
        sys.exit(1)
    finally:
        publisher.close()
        store.close()
    if as_json:
        click.echo(json.dumps({"task_id": run.task_id, "entry": name}))
    else:
        click.echo(run.task_id)


@schedule.command(name="explain")
@click.argument("name")
@click.option("--at", default=None, help="ISO-8601 instant with Z or an offset (default: now).")
@settings_option
@json_option
def explain_command(name: str, at: str | None, settings_file: Path | None, as_json: bool) -> None:
    """Why did NAME (not) run at or before --at? Answered from the ledger and the history."""
    now = datetime.now(UTC)
    instant = parse_instant(at, "--at") if at is not None else now
    settings, _, _ = load_checked(settings_file, as_json)
    store = open_store(settings)
    try:
        answer = explain_slot(store, settings, name, instant, now)
    except EntryNotFound:
        raise click.BadParameter(f"no entry {name!r} in the store", param_hint="NAME") from None
    except StoreError as error:
        click.echo(f"store unavailable: {error}\n{STORE_HINT}", err=True)
        sys.exit(1)
    finally:
        store.close()
    if as_json:
        slot = None if answer.slot is None else answer.slot.isoformat().replace("+00:00", "Z")
        body = {"entry": name, "slot": slot, "reason": answer.reason}
        click.echo(json.dumps({**body, "summary": answer.summary, "facts": answer.facts}))
        return
    slot_text = "no slot" if answer.slot is None else answer.slot.isoformat()
    click.echo(f"{name} @ {slot_text}: {answer.reason}")
    click.echo(f"  {answer.summary}")
    for key, value in answer.facts.items():
        if value is not None:
            click.echo(f"  {key}: {value}")


@schedule.command(name="backfill")
@click.argument("name")
@click.option("--from", "start", required=True, help="ISO-8601 with Z or an offset.")
@click.option("--to", "end", required=True, help="ISO-8601, not in the future.")
@click.option("--dry-run", is_flag=True, help="List the slots that would run; dispatch nothing.")
@settings_option
@json_option
def backfill_command(
    name: str,
    start: str,
    end: str,
    dry_run: bool,
    settings_file: Path | None,
    as_json: bool,
) -> None:
    """Run the slots of NAME in [--from, --to] that never ran, each once (repeat: harmless)."""
    window = (parse_instant(start, "--from"), parse_instant(end, "--to"))
    settings, _, _ = load_checked(settings_file, as_json)
    store = open_store(settings)
    publisher = (
        None
        if dry_run
        else ConfirmedPublisher.from_settings(settings.broker, declare=declarer(settings))
    )
    try:
        report = backfill(
            store,
            publisher,
            settings,
            name,
            *window,
            now=datetime.now(UTC),
            dry_run=dry_run,
            actor=cli_actor(),
        )
    except EntryNotFound:
        raise click.BadParameter(f"no entry {name!r} in the store", param_hint="NAME") from None
    except InvalidEntry as error:
        for problem in error.problems:
            click.echo(f"--{problem.path}: {problem.message}", err=True)
        sys.exit(1)
    except StoreError as error:
        click.echo(f"store unavailable: {error}\n{STORE_HINT}", err=True)
        sys.exit(1)
    finally:
        if publisher is not None:
            publisher.close()
        store.close()
    if as_json:
        click.echo(json.dumps(backfill_json(report)))
        return
    verb = "would run" if dry_run else "dispatched"
    for slot in report.slots:
        stamp = slot.scheduled_for.isoformat().replace("+00:00", "Z")
        if slot.action == "dispatch":
            click.echo(f"  {stamp}  {verb}  {slot.task_id}")
        else:
            click.echo(f"  {stamp}  skipped ({slot.state})")
    runs = sum(1 for slot in report.slots if slot.action == "dispatch")
    summary = f"{name}: {len(report.slots)} slot(s), {runs} {verb}, {report.skipped} skipped"
    if report.unconfirmed:
        summary += f", {report.unconfirmed} not confirmed (the leading beat publishes them)"
    click.echo(summary)


def backfill_json(report: BackfillReport) -> dict[str, Any]:
    return {
        "entry": report.entry,
        "dry_run": report.dry_run,
        "dispatched": report.dispatched,
        "unconfirmed": report.unconfirmed,
        "skipped": report.skipped,
        "slots": [
            {
                "scheduled_for": slot.scheduled_for.isoformat().replace("+00:00", "Z"),
                "task_id": slot.task_id,
                "action": slot.action,
                "state": slot.state,
            }
            for slot in report.slots
        ],
    }


@click.group()
def queues() -> None:
    """Declare and inspect the RabbitMQ queues named in settings.toml."""


@queues.command()
@settings_option
def declare(settings_file: Path | None) -> None:
    """Declare the exchange, every queue and the dead-letter queue (idempotent)."""
    settings, celery, _ = load_checked(settings_file, as_json=False)
    try:
        with celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=1, interval_step=1)
            for name in declare_topology(connection, settings):
                click.echo(f"declared {name}")
    except ConfigError as error:
        click.echo(str(error), err=True)
        sys.exit(1)
    except (OSError, OperationalError) as error:
        click.echo(f"broker unreachable: {error}\n{BROKER_HINT}", err=True)
        sys.exit(1)


@queues.command()
@settings_option
@json_option
def status(settings_file: Path | None, as_json: bool) -> None:
    """Depth and consumers of every queue."""
    settings, celery, _ = load_checked(settings_file, as_json)
    try:
        with celery.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, interval_start=1, interval_step=1)
            rows = [
                {
                    **vars(queue_status(connection, str(q.name))),
                    "type": _queue_type(settings, str(q.name)),
                    "priority": _priority(settings, str(q.name)),
                }
                for q in topology(settings)
            ]
    except (OSError, OperationalError) as error:
        click.echo(f"broker unreachable: {error}\n{BROKER_HINT}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(rows))
    else:
        print_table(rows, ["name", "type", "priority", "exists", "messages", "consumers"])


def _queue_type(settings: Settings, name: str) -> str:
    """A declared queue's type; the dead-letter queues follow the task queues'."""
    declared = settings.queues.get(name)
    return declared.type if declared else dead_letter_type(settings)


def _priority(settings: Settings, name: str) -> int | None:
    declared = settings.queues.get(name)
    return declared.priority if declared else None
