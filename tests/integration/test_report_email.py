"""`send_run_report` delivers a real e-mail to an SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from scheduling.config.settings import ScheduleEntry, SmtpSettings
from scheduling.errors import MailRejected, MailUnavailable
from scheduling.store import RunState, SlotClaim
from scheduling.tasks.mailer import send_mail
from tests.support.certificates import Certificate, self_signed
from tests.support.worker_stage import WorkerStage, worker_stage

pytestmark = pytest.mark.integration

USER, PASSWORD = "reporter", "correct horse battery"


@dataclass
class Inbox:
    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_smtp_server(certificate: Certificate) -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        server_hostname="localhost",
        tls_context=certificate.server_context(),
        require_starttls=True,
        auth_required=True,
        authenticator=authenticate,
    )
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


# ------------------------------------------------------------------ the report, end to end
@pytest.fixture
def stage(tmp_path: Path, broker_url: str, smtp_server: tuple[Inbox, int]) -> Iterator[WorkerStage]:
    _, port = smtp_server
    smtp = f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nsender = "periodic@example.org"\n'
    with worker_stage(tmp_path, broker_url, roles=("default",), extra_settings=smtp) as s:
        yield s


def record_history(stage: WorkerStage, now: datetime) -> None:
    """A day of runs: a slow success, a failure, a missed slot and a late start."""
    store = stage.store
    for name, task in (("backup", "scheduling.tasks.heartbeat.heartbeat"), ("sync-users", "x.y")):
        store.create_entry(
            name, ScheduleEntry(task=task, every=timedelta(hours=1)), next_run_at=None
        )
    lease = store.acquire_lease("test", timedelta(minutes=1), now)
    assert lease is not None
    slot = now - timedelta(hours=3)
    claims = [
        SlotClaim("backup", slot, "b1", RunState.PENDING),
        SlotClaim("backup", slot + timedelta(hours=1), "b2", RunState.PENDING),
        SlotClaim("sync-users", slot, "s1", RunState.PENDING),
        SlotClaim("sync-users", slot + timedelta(hours=1), "s2", RunState.MISSED),
        SlotClaim("backup", now - timedelta(days=3), "old", RunState.PENDING),
    ]
    store.claim_slots(claims, holder="test", token=lease.token, next_runs={})
    store.record_run_started("b1", "w@h", slot + timedelta(seconds=1))
    store.record_run_finished("b1", RunState.SUCCEEDED, slot + timedelta(seconds=13), runtime=12.5)
    store.record_run_started("b2", "w@h", slot + timedelta(hours=1, minutes=5))  # late
    store.record_run_finished(
        "b2", RunState.SUCCEEDED, slot + timedelta(hours=1, minutes=6), runtime=3.0
    )
    store.record_run_started("s1", "w@h", slot)
    store.record_run_finished(
        "s1",
        RunState.FAILED,
        slot + timedelta(seconds=2),
        error_type="ConnectionError",
        error_message="directory server unreachable",
    )


def test_the_worker_mails_a_summary_of_each_entry(
    stage: WorkerStage, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp_server
    record_history(stage, datetime.now(UTC))
    stage.start_worker("default", "report-worker")
    task_id = stage.send(
        "scheduling.tasks.reports.send_run_report",
        "default",
        kwargs={"recipients": ["ops@example.org", "lead@example.org"], "period": "24h"},
    )
    run = stage.wait_for_run(task_id, {RunState.SUCCEEDED, RunState.FAILED})
    assert run.state is RunState.SUCCEEDED, run.error_message
    ((recipients, message),) = inbox.messages
    assert recipients == ["ops@example.org", "lead@example.org"]
    assert message["From"] == "periodic@example.org"
    assert message["To"] == "ops@example.org, lead@example.org"
    assert message["Subject"].startswith("Periodic: ")
    assert "1 failed, 1 missed in the last 1d" in message["Subject"]
    body = message.get_content()
    table = body.split("Failures (newest first):")[0].splitlines()
    lines = {line.split()[0]: line.split()[1:] for line in table if line.strip()}
    # columns: succeeded failed expired missed skipped late slowest
    assert lines["backup"] == ["2", "0", "0", "0", "0", "1", "12.5s"]
    assert lines["sync-users"] == ["0", "1", "0", "1", "0", "0", "2.0s"]
    assert "sync-users" in body.split("Failures (newest first):")[1]
    assert "ConnectionError: directory server unreachable" in body


# ------------------------------------------------------------------ the mailer's TLS and auth
def tls_settings(port: int, **overrides: Any) -> SmtpSettings:
    values: dict[str, Any] = {
        "host": "localhost",
        "port": port,
        "starttls": True,
        "username": USER,
        "password": PASSWORD,
        "sender": "periodic@example.org",
        "timeout": "5s",
    }
    return SmtpSettings(**{**values, **overrides})


def test_starttls_and_login_deliver_the_message(
    tls_smtp_server: tuple[Inbox, int], certificate: Certificate
) -> None:
    inbox, port = tls_smtp_server
    send_mail(
        tls_settings(port),
        ["ops@example.org"],
        "hello",
        "over TLS\n",
        ssl_context=certificate.client_context(),
    )
    ((recipients, message),) = inbox.messages
    assert recipients == ["ops@example.org"]
    assert message.get_content().splitlines() == ["over TLS"]


def test_a_wrong_password_is_rejected_not_retried(
    tls_smtp_server: tuple[Inbox, int], certificate: Certificate
) -> None:
    _, port = tls_smtp_server
    with pytest.raises(MailRejected, match="refused the login"):
        send_mail(
            tls_settings(port, password="wrong"),
            ["ops@example.org"],
            "hello",
            "x",
            ssl_context=certificate.client_context(),
        )


def test_an_untrusted_certificate_is_rejected(tls_smtp_server: tuple[Inbox, int]) -> None:
    _, port = tls_smtp_server
    with pytest.raises(MailRejected, match="TLS"):
        send_mail(tls_settings(port), ["ops@example.org"], "hello", "x")


def test_a_server_that_is_not_there_is_unavailable() -> None:
    with pytest.raises(MailUnavailable):
        send_mail(
            SmtpSettings(host="127.0.0.1", port=free_port(), timeout="2s"),
            ["a@example.org"],
            "s",
            "b",
        )
