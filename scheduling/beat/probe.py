"""``python -m scheduling.beat.probe``: the healthcheck of a beat container (compose.yaml).

Beat serves no port, so the probe asks the store: every beat, leader or standby, writes its
status row from the lease thread every ``lease_ttl / 3``. A beat whose row on this host is older
than `STALE_AFTER` lease TTLs is hung, stuck or gone. The probe exits 0 when a fresh row exists,
1 otherwise (naming what it saw); with the store down it exits 1, since a beat that cannot reach
the store is not doing its job either. Settings come from ``$PERIODIC_SETTINGS`` as for beat.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from scheduling.config.loading import load_settings, settings_path
from scheduling.errors import ConfigError, StoreError
from scheduling.store import BeatStatus, Store

__all__ = ["STALE_AFTER", "fresh_beat", "run_probe"]

STALE_AFTER = 3
"""Lease TTLs without a status report before a beat counts as dead (9 missed reports)."""


def fresh_beat(
    beats: Sequence[BeatStatus], hostname: str, lease_ttl: timedelta, now: datetime
) -> BeatStatus | None:
    """The most recent status of a beat on `hostname`, if it reported recently enough."""
    mine = [beat for beat in beats if beat.hostname == hostname]
    newest = max(mine, key=lambda beat: beat.last_tick, default=None)
    if newest is None or now - newest.last_tick > STALE_AFTER * lease_ttl:
        return None
    return newest


def run_probe(argv: Sequence[str] | None = None) -> int:
    hostname = (argv or sys.argv[1:] or [socket.gethostname()])[0]
    try:
        settings = load_settings(settings_path(None))
        with Store.open(settings.app.database_url.get_secret_value()) as store:
            beats = store.beats()
    except (ConfigError, StoreError) as error:
        print(f"beat probe: {error}", file=sys.stderr)
        return 1
    beat = fresh_beat(beats, hostname, settings.beat.lease_ttl, datetime.now(UTC))
    if beat is None:
        print(f"beat probe: no beat on {hostname} reported recently", file=sys.stderr)
        return 1
    print(f"beat probe: {beat.role} on {hostname}, last report {beat.last_tick.isoformat()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_probe())
