"""A throwaway RabbitMQ cluster on loopback: N `LocalRabbitNode`s joined with ``join_cluster``.

For fault drills and benchmarks of quorum queues, without Docker. Each node has its own name,
AMQP and distribution ports, data and logs under ``base_dir/node-<i>``; all share one epmd
(Erlang nodes on one host find each other through the epmd on the port they all use, and it
must outlive a node that is killed) and one Erlang cookie (nodes and ``rabbitmqctl`` must agree
on it). Nodes boot in parallel, then every node but the first runs ``stop_app``, ``reset``,
``join_cluster <first>`` and ``start_app``.

A killed node comes back with `restart`: its data directory remembers the cluster, so it rejoins
by itself and its quorum queue replicas catch up from the others.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Self

from project.devtools.localbroker import LocalEpmd, LocalRabbitNode
from project.errors import BrokerNodeError

__all__ = ["LocalRabbitCluster"]


class LocalRabbitCluster:
    """``size`` private RabbitMQ nodes forming one cluster (see the module docstring)."""

    def __init__(self, base_dir: Path, size: int = 3) -> None:
        if size < 1:
            raise ValueError("a cluster needs at least one node")
        self.base_dir = Path(base_dir).absolute()
        self.epmd = LocalEpmd(self.base_dir / "epmd")
        cookie = secrets.token_hex(16).upper()
        tag = secrets.token_hex(3)
        self.nodes = [
            LocalRabbitNode(
                self.base_dir / f"node-{index + 1}",
                node_name=f"periodic-cluster-{tag}-{index + 1}@localhost",
                epmd=self.epmd,
                cookie=cookie,
            )
            for index in range(size)
        ]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """Every node's URL, ``;``-joined: what ``[broker].url`` takes for a cluster."""
        return ";".join(self.urls)

    def start(self, timeout: float = 120.0) -> None:
        """Boot every node at once, then join them into one cluster; stop all on failure."""
        deadline = time.monotonic() + timeout
        try:
            self.epmd.start(deadline)
            with ThreadPoolExecutor(len(self.nodes)) as pool:
                for result in [pool.submit(node.start, timeout) for node in self.nodes]:
                    result.result()
            seed = self.nodes[0]
            for node in self.nodes[1:]:
                for args in (("stop_app",), ("reset",), ("join_cluster", seed.node_name)):
                    self._ctl(node, *args)
                self._ctl(node, "start_app")
                self._ctl(node, "await_startup", "--timeout", str(self._left(deadline)))
            self.await_members(self.nodes, deadline)
        except BaseException:
            self.stop()
            raise

    def kill(self, node: LocalRabbitNode) -> None:
        """SIGKILL one node (and its helpers): a crash; the shared epmd stays."""
        node.kill()

    def restart(self, node: LocalRabbitNode, timeout: float = 90.0) -> None:
        """Start a stopped or killed node again; return once the cluster runs it again."""
        deadline = time.monotonic() + timeout
        node.start(timeout)
        self.await_members([node], deadline)

    def await_quorum_without(self, node: LocalRabbitNode, timeout: float = 60.0) -> None:
        """Wait until every quorum queue keeps its majority if `node` goes away.

        A restarted node is a cluster member again (`restart`) before its quorum-queue replicas
        have recovered and rejoined as followers; until they have, losing a second node leaves
        a 3-node queue without a majority, unable to accept a message. This is RabbitMQ's own
        check before taking a node down (``rabbitmq-queues check_if_node_is_quorum_critical``).
        """
        deadline = time.monotonic() + timeout
        while True:
            result = node.rabbitmqctl(
                "check_if_node_is_quorum_critical", tool="rabbitmq-queues", timeout=60.0
            )
            if result.returncode == 0:
                return
            if time.monotonic() >= deadline:
                msg = f"{node.node_name} is still quorum-critical: {result.stdout}{result.stderr}"
                raise BrokerNodeError(msg.strip())
            time.sleep(0.2)

    def running_nodes(self) -> list[LocalRabbitNode]:
        return [node for node in self.nodes if node.running]

    def await_members(self, expected: list[LocalRabbitNode], deadline: float) -> None:
        """Wait until a running node lists every node of ``expected`` as a running member."""
        wanted = {node.node_name for node in expected}
        while True:
            running = self._running_members()
            if wanted <= running:
                return
            if time.monotonic() >= deadline:
                msg = f"cluster members running: {sorted(running)}; expected {sorted(wanted)}"
                raise BrokerNodeError(msg)
            time.sleep(0.2)

    def queue_leaders(self) -> dict[str, str]:
        """Quorum queue name -> the node that leads it now (asked of any running node)."""
        for node in self.running_nodes():
            result = node.rabbitmqctl(
                "list_queues", "name", "type", "leader", "--formatter", "json", "--quiet"
            )
            if result.returncode == 0:
                rows = json.loads(result.stdout or "[]")
                return {
                    str(row["name"]): str(row["leader"])
                    for row in rows
                    if row.get("type") == "quorum" and row.get("leader")
                }
        raise BrokerNodeError("no running node answered list_queues")

    def node_named(self, name: str) -> LocalRabbitNode:
        return next(node for node in self.nodes if node.node_name == name)

    def stop(self) -> None:
        """Stop every node (in parallel), then the shared epmd."""
        try:
            with ThreadPoolExecutor(len(self.nodes)) as pool:
                for result in [pool.submit(node.stop, 20.0) for node in self.nodes]:
                    with contextlib.suppress(BrokerNodeError):
                        result.result()
        finally:
            self.epmd.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _running_members(self) -> set[str]:
        for node in self.running_nodes():
            result = node.rabbitmqctl("cluster_status", "--formatter", "json")
            if result.returncode == 0:
                status = json.loads(result.stdout)
                return {str(name) for name in status.get("running_nodes", [])}
        return set()

    def _ctl(self, node: LocalRabbitNode, *args: str) -> None:
        result = node.rabbitmqctl(*args, timeout=120.0)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            msg = f"rabbitmqctl -n {node.node_name} {' '.join(args)} failed: {output}"
            raise BrokerNodeError(msg)

    @staticmethod
    def _left(deadline: float) -> int:
        return max(5, int(deadline - time.monotonic()))
