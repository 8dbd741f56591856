"""When the first message reaches a queue, seen from a process of its own.

``python -m benchmarks.first_message BROKER_URL QUEUE``: prints ``ready`` once connected, then
polls the queue's depth every millisecond (a passive declare; a queue not declared yet counts
as empty) and prints the wall-clock time (``time.time()``) at which it first saw a message,
then exits. W1 compares it with the wall-clock time at which the scheduler began the step that
dispatched: a thread of the beat's own process would see the message late, since it waits for
the GIL while beat is busy publishing the rest of the burst.
"""

from __future__ import annotations

import sys
import time

import amqp
from kombu import Connection

POLL = 0.001
TIMEOUT = 300.0


def main() -> None:
    url, queue = sys.argv[1], sys.argv[2]
    with Connection(url) as connection:
        channel = connection.channel()
        print("ready", flush=True)
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                depth = channel.queue_declare(queue, passive=True).message_count
            except amqp.exceptions.NotFound:
                channel = connection.channel()  # the broker closed it: not declared yet
                depth = 0
            if depth:
                print(f"{time.time():.6f}", flush=True)
                return
            time.sleep(POLL)
    print("nan", flush=True)


if __name__ == "__main__":
    main()
