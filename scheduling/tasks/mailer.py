"""Sending one plain-text e-mail over SMTP, as ``[smtp]`` describes the server.

Plain SMTP, STARTTLS (``starttls = true``) or implicit TLS (``ssl = true``), with login when a
username is set. Certificates are verified against the system's trust store (point
``SSL_CERT_FILE`` at a private CA if needed); STARTTLS is required when asked for, never
silently skipped. Failures are split the way a retry policy needs them: an unreachable or busy
server (connection errors, timeouts, 4xx answers) is `MailUnavailable`, which the task retries;
a refusal (5xx, bad credentials, every recipient rejected) is `MailRejected`, which it does not.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from scheduling.config.settings import SmtpSettings
from scheduling.errors import MailRejected, MailUnavailable

__all__ = ["build_message", "send_mail"]


def build_message(sender: str, recipients: Sequence[str], subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "localhost")
    message.set_content(body)
    return message


def _open(smtp: SmtpSettings, context: ssl.SSLContext) -> smtplib.SMTP:
    timeout = smtp.timeout.total_seconds()
    if smtp.ssl:
        return smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=timeout, context=context)
    return smtplib.SMTP(smtp.host, smtp.port, timeout=timeout)


def send_mail(
    smtp: SmtpSettings,
    recipients: Sequence[str],
    subject: str,
    body: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Deliver one message to the SMTP server; raise `MailUnavailable` or `MailRejected`."""
    if not recipients:
        raise MailRejected("no recipients")
    message = build_message(smtp.sender, recipients, subject, body)
    context = ssl_context or ssl.create_default_context()
    where = f"SMTP server {smtp.host}:{smtp.port}"
    try:
        with _open(smtp, context) as client:
            if smtp.starttls and not smtp.ssl:
                client.starttls(context=context)
            if smtp.username:
                password = smtp.password.get_secret_value() if smtp.password else ""
                client.login(smtp.username, password)
            refused = client.send_message(message, smtp.sender, list(recipients))
    except smtplib.SMTPNotSupportedError as error:
        raise MailRejected(f"{where}: {error}") from error
    except smtplib.SMTPAuthenticationError as error:
        raise MailRejected(f"{where} refused the login of {smtp.username!r}") from error
    except smtplib.SMTPRecipientsRefused as error:
        raise MailRejected(
            f"{where} refused every recipient: {sorted(error.recipients)}"
        ) from error
    except smtplib.SMTPResponseException as error:
        text = (
            error.smtp_error.decode(errors="replace")
            if isinstance(error.smtp_error, bytes)
            else str(error.smtp_error)
        )
        problem = f"{where} answered {error.smtp_code} {text}"
        if 400 <= error.smtp_code < 500:
            raise MailUnavailable(problem) from error
        raise MailRejected(problem) from error
    except ssl.SSLError as error:
        raise MailRejected(f"{where}: TLS failed: {error}") from error
    except (smtplib.SMTPException, OSError) as error:
        raise MailUnavailable(f"{where}: {error!r}") from error
    if refused:
        raise MailRejected(f"{where} refused some recipients: {sorted(refused)}")
