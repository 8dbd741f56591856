"""The AMQP 0-9-1 frames of one ``basic.publish``, encoded from precomputed pieces.

py-amqp encodes every message through its generic serializer (a `BytesIO`, a type test and a
`struct.pack` per header, a socket timeout set and reset per publish): about 45 µs of CPU per
task message here, more than beat spends on a slot anywhere else in a burst. The messages beat
sends all have one shape (Celery protocol 2 headers of fixed keys and types, see
`scheduling.broker.publisher.task_message`), so their frames are assembled here from constant
byte strings and the few values that differ per message (task id, slot, entry, expiry). The
bytes are exactly those py-amqp writes for the same `amqp.Message` (a unit test compares them),
so the broker, the workers and py-amqp's own channel state see no difference.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from struct import Struct
from typing import Any, Final

__all__ = ["MessageShape", "encode_item", "publish_frames", "table"]

_BASIC = 60
_PUBLISH = 40
_FRAME_END = b"\xce"
_FRAME_HEAD = Struct(">BHI")
_CONTENT_HEAD = Struct(">HHQ")
_LONG = Struct(">I")
_METHOD_PREFIX = Struct(">HHH").pack(_BASIC, _PUBLISH, 0)  # class, method, reserved-1
VARIABLE: Final = object()
"""Marks a header whose value differs per message in a `MessageShape`."""


def shortstr(value: str) -> bytes:
    data = value.encode("utf-8", "surrogatepass")
    return bytes((len(data),)) + data  # ValueError above 255 bytes, as py-amqp's pack fails


def encode_item(value: Any) -> bytes:
    """A field-table value as py-amqp encodes it (the types Celery's headers use)."""
    if isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
        return b"S" + _LONG.pack(len(data)) + data
    if value is None:
        return b"V"
    if isinstance(value, bool):
        return b"t\x01" if value else b"t\x00"
    if isinstance(value, int):
        if -2147483647 <= value <= 2147483647:
            return b"I" + value.to_bytes(4, "big", signed=True)
        return b"L" + value.to_bytes(8, "big", signed=True)
    if isinstance(value, dict):
        return b"F" + table(value)
    if isinstance(value, list | tuple):
        data = b"".join(encode_item(item) for item in value)
        return b"A" + _LONG.pack(len(data)) + data
    raise ValueError(f"no AMQP field type for {type(value).__name__} {value!r}")


def table(values: dict[str, Any]) -> bytes:
    data = b"".join(shortstr(key) + encode_item(value) for key, value in values.items())
    return _LONG.pack(len(data)) + data


class MessageShape:
    """Headers with fixed keys, most of them constant: encoded once, the rest per message.

    `headers` lists (key, value) in message order, `VARIABLE` for a value given to `headers_table`
    (in that order). Constant runs between variable headers are kept as one byte string each.
    """

    def __init__(self, headers: Sequence[tuple[str, Any]]) -> None:
        self.pieces: list[bytes] = []
        pending = b""
        for key, value in headers:
            if value is VARIABLE:
                self.pieces.append(pending + shortstr(key))
                pending = b""
            else:
                pending += shortstr(key) + encode_item(value)
        self.tail = pending

    def headers_table(self, values: Sequence[Any]) -> bytes:
        parts: list[bytes] = []
        for piece, value in zip(self.pieces, values, strict=True):
            parts.append(piece)
            parts.append(encode_item(value))
        parts.append(self.tail)
        data = b"".join(parts)
        return _LONG.pack(len(data)) + data


def publish_frames(
    channel_id: int,
    frame_max: int,
    method_args: bytes,
    properties: bytes,
    body: bytes,
) -> bytes:
    """Method, content header and body frame(s) of one publish, as py-amqp writes them.

    `method_args` from `publish_args`; `properties` is the property flags and list.
    """
    method = _METHOD_PREFIX + method_args
    header = _CONTENT_HEAD.pack(_BASIC, 0, len(body)) + properties
    parts = [
        _FRAME_HEAD.pack(1, channel_id, len(method)),
        method,
        _FRAME_END,
        _FRAME_HEAD.pack(2, channel_id, len(header)),
        header,
        _FRAME_END,
    ]
    chunk = frame_max - 8
    for start in range(0, len(body), chunk):
        piece = body[start : start + chunk]
        parts += (_FRAME_HEAD.pack(3, channel_id, len(piece)), piece, _FRAME_END)
    return b"".join(parts)


def publish_args(exchange: str, routing_key: str, *, mandatory: bool) -> bytes:
    """``basic.publish`` arguments after the reserved short (immediate is never set)."""
    return shortstr(exchange) + shortstr(routing_key) + (b"\x01" if mandatory else b"\x00")


def iso_utc(instant: datetime) -> str:
    """ISO-8601 in UTC with a ``Z``: the form of the ``periodic_slot`` header."""
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def json_body(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
