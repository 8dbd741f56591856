"""Publishing task messages with pipelined publisher confirms: the broker half of the outbox.

Exactly-once dispatch rests on two steps: beat claims a slot in the store (a ledger row that a
second claim cannot insert), then publishes it here and only marks it dispatched once RabbitMQ has
confirmed it. Waiting for a confirm after each message caps a publisher at about 2k messages/s;
so the channel is put in confirm mode once, the whole batch is written, and the ``basic.ack`` /
``basic.nack`` frames (often one ack with ``multiple=True`` for many messages) are collected
afterwards. A batch of 10k messages costs one round trip instead of 10k.

Messages are Celery protocol-2 task messages that a stock Celery worker executes, built here
directly (no ``app.send_task``, no per-message producer overhead) and written as AMQP frames
assembled from precomputed pieces (`TaskFrames`, `scheduling.broker.frames`): the same bytes
py-amqp would write, at a fraction of its encoding cost. ``argsrepr`` and
``kwargsrepr`` are redacted, so task arguments never reach worker or beat logs. Two extra headers
name the slot: ``periodic_entry`` and ``periodic_slot`` (ISO-8601 UTC with ``Z``).

Messages are published ``mandatory``: a message no queue takes (a queue deleted behind our back)
is returned by the broker and reported as a failure instead of vanishing.

With `sent_events`, each confirmed message is followed by the ``task-sent`` event that
``apply_async`` sends when ``task_send_sent_event`` is on, so Flower and ``celery events`` show a
run from the moment it is queued, not only once a worker receives it. Events are transient and
unconfirmed, as Celery's own are (on a second channel, not in confirm mode): a lost event never
fails a dispatch.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import count
from typing import Any

import amqp
from kombu import Connection

from scheduling.broker.frames import (
    VARIABLE,
    MessageShape,
    iso_utc,
    json_body,
    publish_args,
    publish_frames,
    shortstr,
    table,
)
from scheduling.broker.nodes import BrokerNodes
from scheduling.config.compiler import EXCHANGE_NAME
from scheduling.config.settings import BrokerSettings
from scheduling.errors import BrokerUnavailable, ConfigError, PublishError

__all__ = [
    "EVENT_EXCHANGE",
    "REDACTED",
    "BatchPublishError",
    "ConfirmedPublisher",
    "OutgoingRun",
    "SentBatch",
    "TaskFrames",
    "iso_utc",
    "sent_event",
    "task_message",
]

REDACTED = "(…)"
"""What ``argsrepr``/``kwargsrepr`` say instead of the arguments (which may hold secrets)."""

_EMBED: dict[str, None] = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
EVENT_EXCHANGE = "celeryev"
"""Celery's event exchange (topic, durable), as workers with events on declare it."""


@dataclass(frozen=True)
class OutgoingRun:
    """One claimed slot (or manual run) ready to become a task message."""

    task_id: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    queue: str
    entry: str
    scheduled_for: datetime
    expires: datetime | None = None
    priority: int | None = None


class BatchPublishError(PublishError):
    """Some messages of a batch were not confirmed; `confirmed` lists the ones that were.

    `refused` maps the task ids the broker answered for but would not take (returned as
    unroutable, nacked, or the one message of a batch that closed the channel) to the reason:
    those are the messages' own problem, not an outage. `channel_error` says the broker closed
    the channel over some message of a larger batch, which one is not known.
    """

    def __init__(
        self,
        message: str,
        confirmed: frozenset[str],
        refused: dict[str, str] | None = None,
        *,
        channel_error: bool = False,
    ) -> None:
        super().__init__(message)
        self.confirmed = confirmed
        self.refused = dict(refused or {})
        self.channel_error = channel_error


_TASK_VARIABLE = (
    "task",
    "id",
    "expires",
    "root_id",
    "argsrepr",
    "kwargsrepr",
    "periodic_entry",
    "periodic_slot",
)
"""The headers of a task message that differ between runs; the rest are the same for all."""
_TASK_FLAGS = 0x8000 | 0x4000 | 0x2000 | 0x1000 | 0x0400 | 0x0200
"""content_type, content_encoding, headers, delivery_mode, correlation_id, reply_to."""
_PRIORITY_FLAG = 0x0800
_EMPTY_BODY = json_body([[], {}, _EMBED])
_json_string: Callable[[str], str] = json.encoder.encode_basestring_ascii
"""A string as ``json.dumps`` writes it (ASCII, quoted)."""


def _task_headers(run: OutgoingRun, origin: str) -> dict[str, Any]:
    return {
        "lang": "py",
        "task": run.task,
        "id": run.task_id,
        "shadow": None,
        "eta": None,
        "expires": run.expires.astimezone(UTC).isoformat() if run.expires else None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": run.task_id,
        "parent_id": None,
        "argsrepr": REDACTED if run.args else "()",
        "kwargsrepr": REDACTED if run.kwargs else "{}",
        "origin": origin,
        "ignore_result": False,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
        "periodic_entry": run.entry,
        "periodic_slot": iso_utc(run.scheduled_for),
    }


def _task_body(run: OutgoingRun) -> bytes:
    if not run.args and not run.kwargs:
        return _EMPTY_BODY
    return json_body([run.args, run.kwargs, _EMBED])


def task_message(run: OutgoingRun, origin: str) -> amqp.Message:
    """A Celery protocol-2 message for `run` (what ``Task.apply_async`` would send).

    The publisher writes the same message as frames (`TaskFrames`), without this object.
    """
    properties: dict[str, Any] = {
        "correlation_id": run.task_id,
        "reply_to": "",
        "delivery_mode": 2,
    }
    if run.priority is not None:
        properties["priority"] = run.priority
    return amqp.Message(
        _task_body(run),
        content_type="application/json",
        content_encoding="utf-8",
        application_headers=_task_headers(run, origin),
        **properties,
    )


class TaskFrames:
    """The wire frames of `task_message` and `sent_event`, built from precomputed pieces.

    See `scheduling.broker.frames`: the per-message CPU of a burst was mostly py-amqp's
    generic encoder; here only the task id, slot, entry, expiry (and the event's body) are
    encoded per message.
    """

    def __init__(self, origin: str, exchange: str) -> None:
        self.origin = origin
        self.exchange = exchange
        sample = OutgoingRun("id", "task", [], {}, "queue", "entry", datetime.now(UTC))
        constant = _task_headers(sample, origin)
        self.shape = MessageShape(
            [(key, VARIABLE if key in _TASK_VARIABLE else value) for key, value in constant.items()]
        )
        if [key for key in constant if key in _TASK_VARIABLE] != list(_TASK_VARIABLE):
            raise AssertionError("_TASK_VARIABLE must follow the order of _task_headers")
        self.leading = shortstr("application/json") + shortstr("utf-8")
        self.routes: dict[str, bytes] = {}
        self.event_args = publish_args(EVENT_EXCHANGE, "task.sent", mandatory=False)
        self.quoted_exchange = _json_string(exchange)
        self.quoted_origin = _json_string(origin)
        self.event_properties = (
            (0x8000 | 0x4000 | 0x2000 | 0x1000).to_bytes(2, "big")
            + self.leading
            + table({"hostname": origin})
            + b"\x01"
        )

    def task(self, run: OutgoingRun, channel_id: int, frame_max: int) -> bytes:
        flags = _TASK_FLAGS if run.priority is None else _TASK_FLAGS | _PRIORITY_FLAG
        variable = (  # in `_TASK_VARIABLE` order, as `_task_headers` has them
            run.task,
            run.task_id,
            run.expires.astimezone(UTC).isoformat() if run.expires else None,
            run.task_id,
            REDACTED if run.args else "()",
            REDACTED if run.kwargs else "{}",
            run.entry,
            iso_utc(run.scheduled_for),
        )
        properties = b"".join(
            (
                flags.to_bytes(2, "big"),
                self.leading,
                self.shape.headers_table(variable),
                b"\x02" if run.priority is None else bytes((2, run.priority)),
                shortstr(run.task_id),
                b"\x00",  # reply_to ""
            )
        )
        args = self.routes.get(run.queue)
        if args is None:
            args = self.routes[run.queue] = publish_args(self.exchange, run.queue, mandatory=True)
        return publish_frames(channel_id, frame_max, args, properties, _task_body(run))

    def event(self, run: OutgoingRun, clock: int, channel_id: int, frame_max: int) -> bytes:
        """The `sent_event` of `run`: its properties are the same for every run, and its body
        is the JSON ``json.dumps`` makes of `_sent_event_body`'s dict, filled into a template."""
        quote = _json_string
        task_id = quote(run.task_id)
        queue = quote(run.queue)
        expires = quote(run.expires.astimezone(UTC).isoformat()) if run.expires else "null"
        body = (
            f'{{"type": "task-sent", "uuid": {task_id}, "root_id": {task_id}, '
            f'"parent_id": null, "name": {quote(run.task)}, '
            f'"args": {quote(REDACTED if run.args else "()")}, '
            f'"kwargs": {quote(REDACTED if run.kwargs else "{}")}, "retries": 0, "eta": null, '
            f'"expires": {expires}, "queue": {queue}, "exchange": {self.quoted_exchange}, '
            f'"routing_key": {queue}, "hostname": {self.quoted_origin}, '
            f'"utcoffset": {_utcoffset()}, "pid": {os.getpid()}, "clock": {clock}, '
            f'"timestamp": {time.time()!r}}}'
        ).encode()
        return publish_frames(channel_id, frame_max, self.event_args, self.event_properties, body)


def _utcoffset() -> int:
    """Hours west of UTC, as Celery's events carry it (`celery.utils.time.utcoffset`)."""
    return (time.altzone if time.daylight else time.timezone) // 3600


def _sent_event_body(run: OutgoingRun, origin: str, exchange: str, clock: int) -> bytes:
    body = {
        "type": "task-sent",
        "uuid": run.task_id,
        "root_id": run.task_id,
        "parent_id": None,
        "name": run.task,
        "args": REDACTED if run.args else "()",
        "kwargs": REDACTED if run.kwargs else "{}",
        "retries": 0,
        "eta": None,
        "expires": run.expires.astimezone(UTC).isoformat() if run.expires else None,
        "queue": run.queue,
        "exchange": exchange,
        "routing_key": run.queue,
        "hostname": origin,
        "utcoffset": _utcoffset(),
        "pid": os.getpid(),
        "clock": clock,
        "timestamp": time.time(),
    }
    return json.dumps(body).encode()


def sent_event(run: OutgoingRun, origin: str, exchange: str, clock: int) -> amqp.Message:
    """The ``task-sent`` event Celery publishes for `run` (arguments redacted like the task)."""
    return amqp.Message(
        _sent_event_body(run, origin, exchange, clock),
        content_type="application/json",
        content_encoding="utf-8",
        application_headers={"hostname": origin},
        delivery_mode=1,
    )


class _Confirms:
    """Book-keeping of one batch: delivery tag -> task id, until acked, nacked or returned."""

    def __init__(self) -> None:
        self.outstanding: dict[int, str] = {}
        self.confirmed: set[str] = set()
        self.failed: dict[str, str] = {}
        self.returned: dict[str, str] = {}

    def settle(self, tag: int, multiple: bool, ok: bool) -> None:
        tags = [t for t in self.outstanding if t <= tag] if multiple else [tag]
        for settled in tags:
            task_id = self.outstanding.pop(settled, None)
            if task_id is None:
                continue
            if ok and task_id not in self.returned:
                self.confirmed.add(task_id)
            else:
                self.failed[task_id] = self.returned.get(task_id, "nacked by the broker")

    def on_return(self, error: Exception, exchange: str, routing_key: str, message: Any) -> None:
        headers = getattr(message, "headers", None) or {}
        task_id = str(headers.get("id", ""))
        self.returned[task_id] = f"unroutable: no queue bound to {exchange!r}/{routing_key!r}"


@dataclass
class SentBatch:
    """Runs written by `ConfirmedPublisher.send`, and their confirms as they come."""

    runs: list[OutgoingRun]
    confirms: _Confirms = field(default_factory=_Confirms)


class _BatchedWrites:
    """Collects the frames of a batch and hands them to the socket in large writes.

    py-amqp would write every frame with its own ``sendall``; for a burst of small task messages
    the system calls cost as much as the encoding. Frames keep their order, so confirms and
    channel semantics are unchanged; `flush` is called before waiting for confirms.
    """

    FLUSH_AT = 256 * 1024

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.buffer = bytearray()

    def write(self, data: bytes | memoryview) -> None:
        self.buffer += data
        if len(self.buffer) >= self.FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            data, self.buffer = bytes(self.buffer), bytearray()
            self.transport.write(data)


class ConfirmedPublisher:
    """Publishes batches of `OutgoingRun` and returns only once the broker confirmed all of them.

    `url` is the broker URL (``amqp://``/``amqps://``), or several ``;``-joined node URLs of a
    cluster (see `BrokerNodes`). The connection is opened lazily and
    dropped on any error, so the next `publish` reconnects: the caller (beat) owns retries and
    backoff. Not thread-safe; one publisher per thread.
    """

    def __init__(
        self,
        url: str,
        *,
        exchange: str = EXCHANGE_NAME,
        connect_timeout: float = 4.0,
        confirm_timeout: float = 5.0,
        origin: str | None = None,
        declare: Callable[[Connection], object] | None = None,
        nodes: BrokerNodes | None = None,
        sent_events: bool = False,
    ) -> None:
        self.url = url
        self.sent_events = sent_events
        self._clock = count(1)
        self.nodes = nodes or BrokerNodes(url)
        """Several nodes (a cluster): a connection that breaks is replaced by one to the next
        node that answers, so a dead node costs one failed batch, which the caller retries."""
        self._declare = declare
        """Declares the topology on every new connection: a web process that publishes first on
        a fresh broker must not depend on a worker or beat having declared the queues."""
        self.exchange = exchange
        self.connect_timeout = connect_timeout
        self.confirm_timeout = confirm_timeout
        self.origin = origin or f"periodic-beat-{os.getpid()}@{socket.gethostname()}"
        self._connection: Connection | None = None
        self._channel: Any = None
        self._events: Any = None
        self._frames = TaskFrames(self.origin, exchange)
        self._confirms = _Confirms()
        self._published = 0

    @classmethod
    def from_settings(cls, broker: BrokerSettings, **options: Any) -> ConfirmedPublisher:
        return cls(
            broker.url.get_secret_value(),
            connect_timeout=broker.connect_timeout.total_seconds(),
            confirm_timeout=broker.publish_timeout.total_seconds(),
            **options,
        )

    @property
    def connected(self) -> bool:
        return self._channel is not None

    def publish(self, runs: Sequence[OutgoingRun]) -> None:
        """Publish every run, then wait for all confirms; raise `BatchPublishError` otherwise."""
        self.wait(self.send(runs))

    def send(self, runs: Sequence[OutgoingRun]) -> SentBatch:
        """Write every run to the broker without waiting for its confirms (see `wait`).

        One batch at a time: `wait` for it before the next `send`. Meanwhile the caller does
        other work (beat claims its next chunk) while the broker stores and confirms these.
        Raises `BatchPublishError` (nothing confirmed) when the broker cannot be written to.
        """
        batch = SentBatch(list(runs), _Confirms())
        if not runs:
            return batch
        try:
            channel = self._open()
            self._confirms = batch.confirms
            self._write_batch(channel, batch.runs, batch.confirms)
        except (OSError, amqp.exceptions.AMQPError, BrokerUnavailable) as error:
            raise self._broken(batch, error) from error
        return batch

    def wait(self, batch: SentBatch) -> None:
        """Wait for the confirms of a `send`; raise `BatchPublishError` unless all came."""
        runs, confirms = batch.runs, batch.confirms
        if not runs:
            return
        try:
            self._await_confirms(confirms)
        except (
            OSError,
            amqp.exceptions.AMQPError,
            amqp.exceptions.MessageNacked,
            BrokerUnavailable,
        ) as error:
            raise self._broken(batch, error) from error
        if self.sent_events and confirms.confirmed:
            try:
                self._send_events([r for r in runs if r.task_id in confirms.confirmed])
            except (OSError, amqp.exceptions.AMQPError):
                self._reset()  # the runs are confirmed; the next batch reconnects
        if confirms.failed:
            reasons = sorted(set(confirms.failed.values()))
            raise BatchPublishError(
                f"{len(confirms.failed)} of {len(runs)} messages not accepted: "
                + "; ".join(reasons),
                frozenset(confirms.confirmed),
                confirms.failed,
            )

    def _broken(self, batch: SentBatch, error: Exception) -> BatchPublishError:
        """Drop the connection after `error`; what the batch got confirmed or refused so far."""
        self._reset()
        runs, confirms = batch.runs, batch.confirms
        # The broker closes the channel (not the connection) over one message it will not
        # take, e.g. one larger than its max_message_size.
        channel_error = isinstance(error, amqp.exceptions.ChannelError)
        refused = dict(confirms.failed)
        if channel_error and len(runs) == 1 and not confirms.confirmed:
            refused[runs[0].task_id] = f"refused by the broker: {error}"
        return BatchPublishError(
            f"broker error after {len(confirms.confirmed)} of {len(runs)} confirms: "
            f"{type(error).__name__}: {error}",
            frozenset(confirms.confirmed),
            refused,
            channel_error=channel_error and len(runs) > 1,
        )

    def ensure_connected(self) -> None:
        """Connect now (outage probes); raise `PublishError` while the broker is down."""
        try:
            self._open()
        except (OSError, amqp.exceptions.AMQPError, BrokerUnavailable) as error:
            self._reset()
            raise PublishError(f"cannot connect to the broker: {error}") from error

    def close(self) -> None:
        self._reset(graceful=True)

    def _open(self) -> Any:
        if self._channel is not None:
            return self._channel
        connection = self.nodes.connect(
            connect_timeout=self.connect_timeout,
            heartbeat=0,
            transport_options={"confirm_publish": False},
        )
        self._connection = connection
        if self._declare is not None:
            try:
                self._declare(connection)
            except ConfigError as error:
                self._reset(graceful=True)
                raise PublishError(str(error)) from error
        # py-amqp polls the socket before every publish when the broker may send
        # connection.blocked; the confirm wait reads those frames anyway, once per batch.
        capabilities = connection.connection.client_properties.get("capabilities", {})
        capabilities["connection.blocked"] = False
        channel = connection.connection.channel()
        if self.sent_events:
            # Events are transient and unconfirmed (as Celery's own): on a channel of their
            # own, so the broker sends no confirm for them to read on the confirm channel.
            events = connection.connection.channel()
            events.exchange_declare(EVENT_EXCHANGE, "topic", durable=True, auto_delete=False)
            self._events = events
        channel.confirm_select()
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        channel.events["basic_return"].add(self._on_return)
        self._channel = channel
        self._published = 0
        return channel

    def _write_batch(self, channel: Any, runs: Sequence[OutgoingRun], confirms: _Confirms) -> None:
        assert self._connection is not None
        raw = self._connection.connection
        writes = _BatchedWrites(raw.transport)
        encode, channel_id, frame_max = self._frames.task, channel.channel_id, raw.frame_max
        outstanding = confirms.outstanding
        for run in runs:
            writes.write(encode(run, channel_id, frame_max))
            outstanding[self._next_tag()] = run.task_id
        raw.bytes_sent += len(runs)
        writes.flush()

    def _send_events(self, runs: Sequence[OutgoingRun]) -> None:
        """One ``task-sent`` per confirmed run, on a channel without confirms (see `_open`)."""
        assert self._connection is not None
        assert self._events is not None
        raw = self._connection.connection
        writes = _BatchedWrites(raw.transport)
        encode, channel_id, frame_max = self._frames.event, self._events.channel_id, raw.frame_max
        for run in runs:
            writes.write(encode(run, next(self._clock), channel_id, frame_max))
        raw.bytes_sent += len(runs)
        writes.flush()

    def _next_tag(self) -> int:
        self._published += 1
        return self._published

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._confirms.settle(delivery_tag, multiple, ok=True)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._confirms.settle(delivery_tag, multiple, ok=False)

    def _on_return(self, error: Exception, exchange: str, routing_key: str, message: Any) -> None:
        self._confirms.on_return(error, exchange, routing_key, message)

    def _await_confirms(self, confirms: _Confirms) -> None:
        assert self._connection is not None
        deadline = time.monotonic() + self.confirm_timeout
        while confirms.outstanding:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"{len(confirms.outstanding)} confirms missing after {self.confirm_timeout}s"
                )
            try:
                self._connection.connection.drain_events(timeout=remaining)
            except TimeoutError:
                continue

    def _reset(self, graceful: bool = False) -> None:
        """Drop the connection; after an error without the close handshake, which could hang."""
        connection, self._connection, self._channel = self._connection, None, None
        self._events = None
        if connection is None:
            return
        try:
            if graceful:
                connection.close()
            else:
                connection.collect()
        except Exception:  # noqa: S110 - closing a broken connection may fail again
            pass
