"""A 3-node RabbitMQ cluster loses a node twice under load, and no run is lost or doubled.

Three throwaway nodes on loopback (`LocalRabbitCluster`), one quorum queue. Beat dispatches 20
one-second entries (``catchup = "all"``) while two workers consume, each preferring another node.
Then ``kill -9`` of the node that leads the queue; once it is back (a cluster member again, and
its replica of the queue a follower again, so the queue survives losing one more node),
``kill -9`` of the node beat is connected to. The evidence is the ledger: for every entry, one
row per second from its first slot to its last, and every row ``succeeded``; beat and both
workers never exited. Recovery is the worst end-to-end delay (slot time to "succeeded") of the
slots around each kill, printed and bounded.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kombu import Connection

from project.devtools.localbroker import rabbitmq_server_available
from project.devtools.localcluster import LocalRabbitCluster
from scheduling.broker.topology import declare_topology
from scheduling.config.loading import load_settings
from scheduling.store import RunRecord, RunState, Store
from tests.support.polling import wait_for
from tests.support.processes import ManagedProcess, celery_beat, celery_worker, clean_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ENTRIES = 20
STEADY = 6.0
"""Seconds of load before the first kill, between the phases, and after the second kill."""
RECOVERY_BOUND = 10.0
"""Worst slot-to-succeeded delay allowed around a kill (a healthy run takes well under 1 s)."""

SETTINGS = """
[app]
database_url = "{database_url}"

[broker]
url = "{broker_url}"
connect_timeout = "2s"
publish_timeout = "5s"

[queues."{queue}"]
type = "quorum"
default = true

[beat]
sync_interval = "1s"
lease_ttl = "3s"
"""
ENTRY = """
[schedule.load-{index:02d}]
task = "scheduling.tasks.heartbeat.heartbeat"
every = "1s"
catchup = "all"
expires = "10m"
"""


@pytest.fixture
def rabbit_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRabbitCluster]:
    if not rabbitmq_server_available():
        pytest.fail(
            "this test kills cluster nodes, so it needs throwaway local nodes: "
            "apt-get install rabbitmq-server (the system service may stay stopped)",
            pytrace=False,
        )
    with LocalRabbitCluster(tmp_path_factory.mktemp("rabbit-cluster")) as cluster:
        yield cluster


def preferring(cluster: LocalRabbitCluster, first: int) -> str:
    """The cluster's URL list rotated so that node `first` is tried first."""
    urls = cluster.urls
    return ";".join(urls[first:] + urls[:first])


def all_runs(store: Store) -> list[RunRecord]:
    return [
        run
        for index in range(ENTRIES)
        for run in store.runs_for_entry(f"load-{index:02d}", limit=10_000)
    ]


def delay(run: RunRecord) -> float:
    assert run.finished_at is not None
    return (run.finished_at - run.scheduled_for).total_seconds()


def worst_delay_around(runs: list[RunRecord], kill: datetime) -> float:
    near = [
        run
        for run in runs
        if kill - timedelta(seconds=2) <= run.scheduled_for <= kill + timedelta(seconds=10)
    ]
    assert near, f"no slot around the kill at {kill}"
    return max(delay(run) for run in near)


def resumed_after(runs: list[RunRecord], worker: str, kill: datetime) -> float:
    """Seconds from the kill to `worker`'s first start of a slot that came after it: a message
    published after the kill, so it reached the worker over its new connection."""
    starts = [
        run.started_at
        for run in runs
        if run.started_at is not None
        and run.scheduled_for > kill
        and (run.hostname or "").startswith(f"{worker}@")
    ]
    assert starts, f"{worker} ran nothing after the kill at {kill}"
    return (min(starts) - kill).total_seconds()


def test_killing_the_queue_leader_then_beats_node_loses_and_doubles_nothing(
    rabbit_cluster: LocalRabbitCluster, tmp_path: Path
) -> None:
    queue = f"load-{uuid.uuid4().hex[:8]}"
    database_url = f"sqlite:///{tmp_path / 'periodic.db'}"
    settings_path = tmp_path / "settings.toml"
    schedule = "".join(ENTRY.format(index=index) for index in range(ENTRIES))
    settings_path.write_text(
        SETTINGS.format(database_url=database_url, broker_url=rabbit_cluster.url, queue=queue)
        + schedule
    )
    # Declared through node 1, so node 1 leads the queue (client-local placement); beat prefers
    # node 2, so the two kills hit different nodes.
    with Connection(rabbit_cluster.urls[0]) as connection:
        declare_topology(connection, load_settings(settings_path))
    assert rabbit_cluster.queue_leaders()[queue] == rabbit_cluster.nodes[0].node_name

    def env(first: int) -> dict[str, str]:
        return clean_env(
            {
                "PERIODIC_SETTINGS": str(settings_path),
                "PERIODIC_BROKER__URL": preferring(rabbit_cluster, first),
            }
        )

    workers = [
        celery_worker(queue, tmp_path, env(first), name=f"worker-{first + 1}", concurrency=2)
        for first in (0, 2)
    ]
    beat = celery_beat(tmp_path, env(1))
    processes: list[ManagedProcess] = [*workers, beat]
    store = Store.open(database_url)
    try:
        beat.wait_for(r"leader: \d+ entries loaded", timeout=90)
        for worker in workers:
            worker.wait_for(r"ready\.", timeout=90)
        wait_for(
            lambda: store.count_runs(state=RunState.SUCCEEDED) >= ENTRIES * 3,
            60,
            "the first runs succeeded",
            interval=0.2,
        )
        time.sleep(STEADY)  # steady load before the first fault

        leader = rabbit_cluster.node_named(rabbit_cluster.queue_leaders()[queue])
        first_kill = datetime.now(UTC)
        rabbit_cluster.kill(leader)
        time.sleep(STEADY)
        rabbit_cluster.restart(leader)
        new_leader = rabbit_cluster.queue_leaders()[queue]

        beats_node = rabbit_cluster.nodes[1]
        assert beats_node is not leader
        # "Back" as an operator means it: the queue's replica on the restarted node follows
        # again, so the queue keeps a majority without beat's node (else no broker could take a
        # message until it has, and the test would measure RabbitMQ's replica recovery).
        restarted = time.monotonic()
        rabbit_cluster.await_quorum_without(beats_node)
        rejoined = time.monotonic() - restarted
        second_kill = datetime.now(UTC)
        rabbit_cluster.kill(beats_node)
        time.sleep(STEADY)
        beat.wait_for(r"broker back", timeout=30)

        for process in processes:
            assert process.process.poll() is None, f"{process.name} exited:\n{process.output()}"
        beat.stop()

        def all_finished() -> bool:
            return all(run.finished for run in all_runs(store))

        wait_for(all_finished, 90, "every claimed run finished", interval=0.2)
        for process in workers:
            assert process.process.poll() is None, f"{process.name} exited:\n{process.output()}"

        runs = all_runs(store)
        by_entry: dict[str, list[RunRecord]] = {}
        for run in runs:
            by_entry.setdefault(run.entry, []).append(run)
        assert len(by_entry) == ENTRIES
        for entry, entry_runs in by_entry.items():
            slots = sorted(run.scheduled_for for run in entry_runs)
            assert len(slots) == len(set(slots)), f"{entry}: a slot has two ledger rows"
            expected = int((slots[-1] - slots[0]).total_seconds()) + 1
            assert len(slots) == expected, f"{entry}: {expected - len(slots)} slots missing"
            assert slots[0] < first_kill - timedelta(seconds=STEADY)
            assert slots[-1] > second_kill + timedelta(seconds=STEADY / 2)
        unsuccessful = [
            (run.entry, run.scheduled_for, run.state, run.error_message)
            for run in runs
            if run.state is not RunState.SUCCEEDED
        ]
        assert not unsuccessful, unsuccessful

        baseline = statistics.median(
            delay(run) for run in runs if run.scheduled_for < first_kill - timedelta(seconds=2)
        )
        recovery = (worst_delay_around(runs, first_kill), worst_delay_around(runs, second_kill))
        # worker-1 prefers node 1 (the first victim), then node 2 (the second): hit both times.
        resumed = (
            resumed_after(runs, "worker-1", first_kill),
            resumed_after(runs, "worker-1", second_kill),
        )
        duplicates = sum(
            worker.output().count("already succeeded; acknowledging the duplicate")
            for worker in workers
        )
        print(
            f"\ncluster fail-over: {len(runs)} runs over {len(runs) // ENTRIES} s, all succeeded "
            f"once; median slot-to-succeeded {baseline:.2f} s; worst around the kill of the "
            f"queue leader {recovery[0]:.2f} s (new leader {new_leader}; the restarted node's "
            f"replica followed again {rejoined:.1f} s after it was a member), around the kill of "
            f"beat's node {recovery[1]:.2f} s; worker-1 ran again {resumed[0]:.2f} s and "
            f"{resumed[1]:.2f} s after its node died; {duplicates} redelivered copies of "
            "succeeded runs skipped"
        )
        assert new_leader != leader.node_name
        assert max(recovery) < RECOVERY_BOUND, recovery
        assert max(resumed) < RECOVERY_BOUND, resumed
    finally:
        for process in processes:
            process.stop()
        store.close()
