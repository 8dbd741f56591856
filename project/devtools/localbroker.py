"""A throwaway local RabbitMQ node for tests, fault drills and ``nox -s serve``.

:class:`LocalRabbitNode` runs the Debian/Ubuntu ``rabbitmq-server`` package's scripts
(``/usr/lib/rabbitmq/bin``) as a child process with everything private to one directory, so it
never touches a system broker that may already run on the machine (``rabbit@localhost`` on
5672/25672/4369).  Every environment variable below is set explicitly because the scripts fall
back to system-wide defaults for anything left unset:

``RABBITMQ_NODENAME``
    ``periodic-test-<random>@localhost``: a node name nobody else uses.  ``@localhost`` avoids any
    dependence on the machine's hostname resolving.
``RABBITMQ_NODE_IP_ADDRESS`` / ``RABBITMQ_NODE_PORT``
    The AMQP listener: loopback only, on our own port (the system node owns 5672).
``RABBITMQ_DIST_PORT``
    Erlang distribution port.  Its default is ``NODE_PORT + 20000``, which may collide or even be
    above 65535; a port we picked is predictable.  ``RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS`` pins
    distribution to 127.0.0.1 (by default it listens on all interfaces).
``ERL_EPMD_PORT`` / ``ERL_EPMD_ADDRESS``
    Our own epmd (the Erlang port mapper).  Sharing the system epmd on 4369 would make our node
    visible to, and dependent on, the system broker's epmd.  We start that epmd ourselves, as a
    tracked child, *before* the node: otherwise ``erl`` daemonises one that outlives the node and
    cannot be told apart from other epmds.
``HOME``
    Erlang reads and creates the distribution cookie in ``$HOME/.erlang.cookie``; ``rabbitmqctl``
    must see the same cookie, so both get a private HOME with a cookie we write.
``RABBITMQ_MNESIA_BASE`` / ``RABBITMQ_LOG_BASE``
    Data (Mnesia, message store, quorum/feature-flag files, pid file) and logs under our directory,
    not ``/var/lib/rabbitmq`` and ``/var/log/rabbitmq``.  Keeping them across :meth:`stop` and
    :meth:`start` is what lets durable queues survive a restart.
``RABBITMQ_CONFIG_FILE``
    Our ``rabbitmq.conf`` (the new-style sysctl format; 3.10 takes the full path including the
    ``.conf`` extension) instead of ``/etc/rabbitmq/rabbitmq.conf``, whose listener would clash.
``RABBITMQ_ADVANCED_CONFIG_FILE``
    Points at a file that does not exist, so ``/etc/rabbitmq/advanced.config`` is not loaded.
``RABBITMQ_CONF_ENV_FILE``
    An *empty file* of ours.  Left unset (or set to the empty string!) the scripts source
    ``/etc/rabbitmq/rabbitmq-env.conf``, which sets the system node's name and Erlang flags.
``RABBITMQ_ENABLED_PLUGINS_FILE``
    Our file containing ``[].``: no plugins, so no management listener on 15672 and a faster boot.

Inherited ``RABBITMQ_*`` and ``ERL_*`` variables (and their unprefixed forms, which the scripts
also honour) are dropped from the child's environment first.

Ports are chosen once per :class:`LocalRabbitNode` and kept, so :meth:`stop` followed by
:meth:`start` brings back the same node on the same port with its data intact.

Processes: epmd and ``rabbitmq-server`` each run in a session of their own.  In the foreground
``rabbitmq-server`` is a ``/bin/sh`` script that runs ``beam.smp`` as *its child* and turns SIGTERM
into a clean shutdown (about 1 s); beam in turn spawns ``erl_child_setup``, ``inet_gethost`` and a
disk-monitor shell.  :meth:`LocalRabbitNode.stop` signals the script, then SIGKILLs whatever is
left of the session; :meth:`LocalRabbitNode.kill` SIGKILLs the whole session at once.  Leaders are
reaped only after their session is empty, so their PIDs (= session ids) cannot be reused while we
still signal them.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from project.devtools.sessions import session_members
from project.errors import BrokerNodeError
from scheduling.config.settings import node_urls

__all__ = [
    "RABBITMQ_BIN_DIR",
    "LocalEpmd",
    "LocalRabbitNode",
    "broker_answers",
    "free_ports",
    "rabbitmq_server_available",
]

RABBITMQ_BIN_DIR: Final = Path("/usr/lib/rabbitmq/bin")
"""Where the Debian package keeps the real scripts (the /usr/sbin wrappers switch user)."""

_LOOPBACK: Final = "127.0.0.1"
_POLL_INTERVAL: Final = 0.05
_LOG_TAIL_LINES: Final = 40

_UNPREFIXED_ENV: Final = frozenset(
    {
        "NODENAME",
        "NODE_IP_ADDRESS",
        "NODE_PORT",
        "DIST_PORT",
        "USE_LONGNAME",
        "CONFIG_FILE",
        "ADVANCED_CONFIG_FILE",
        "CONF_ENV_FILE",
        "ENABLED_PLUGINS_FILE",
        "PLUGINS_DIR",
        "PLUGINS_EXPAND_DIR",
        "MNESIA_BASE",
        "MNESIA_DIR",
        "LOG_BASE",
        "LOGS",
        "PID_FILE",
        "SERVER_ERL_ARGS",
        "SERVER_ADDITIONAL_ERL_ARGS",
        "SERVER_START_ARGS",
        "CTL_ERL_ARGS",
    }
)


def rabbitmq_server_available() -> bool:
    """True when the ``rabbitmq-server`` package's scripts, ``erl`` and ``epmd`` are installed."""
    scripts = ("rabbitmq-server", "rabbitmqctl")
    return all(os.access(RABBITMQ_BIN_DIR / name, os.X_OK) for name in scripts) and all(
        shutil.which(tool) is not None for tool in ("erl", "epmd")
    )


def broker_answers(url: str, timeout: float = 2.0) -> bool:
    """True when an AMQP 0-9-1 broker at ``url`` completes a handshake (login + vhost open).

    ``url`` may list the nodes of a cluster, ``;``-separated: then any node answering will do.
    Uses py-amqp directly rather than ``kombu.Connection.ensure_connection``: kombu waits ~2 s
    before its single retry, which makes polling a booting (or stopped) broker slow.
    """
    nodes = node_urls(url)
    if len(nodes) > 1:
        return any(broker_answers(node, timeout) for node in nodes)
    import amqp
    from kombu.utils.url import parse_url

    parts = parse_url(url)
    if parts.get("transport") not in {"amqp", "amqps", "pyamqp"}:
        msg = f"broker_answers() only speaks AMQP 0-9-1, not {url.split(':', 1)[0]!r}"
        raise ValueError(msg)
    host = parts.get("hostname") or "localhost"
    port = parts.get("port") or (5671 if parts["transport"] == "amqps" else 5672)
    connection = amqp.Connection(
        host=f"{host}:{port}",
        userid=parts.get("userid") or "guest",
        password=parts.get("password") or "guest",
        virtual_host=parts.get("virtual_host") or "/",
        ssl=parts["transport"] == "amqps",
        connect_timeout=timeout,
        read_timeout=timeout,
        write_timeout=timeout,
    )
    try:
        connection.connect()
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            connection.collect()
    return True


def _port_is_free(port: int) -> bool:
    """True when ``port`` can be bound on loopback, IPv4 and (if configured) IPv6.

    epmd listens on ``::1`` as well as on the address it is given, so both must be free.
    """
    for family, host in ((socket.AF_INET, _LOOPBACK), (socket.AF_INET6, "::1")):
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:  # no IPv6 support at all
            continue
        with sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as error:
                if family == socket.AF_INET6 and error.errno == errno.EADDRNOTAVAIL:
                    continue  # IPv6 loopback not configured
                return False
    return True


def free_ports(count: int, exclude: set[int]) -> list[int]:
    """Ports that are free now, distinct, and ideally below the kernel's ephemeral range.

    A port handed out by ``bind(0)`` comes from the ephemeral range, where any outgoing connection
    may grab it while the node is stopped for a fault drill, so a restart on the same port could
    fail.  Random ports just below that range don't have this problem; ``bind(0)`` is the fallback.
    """
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    chosen: list[int] = []
    candidates = range(10000, low) if low > 11000 else range(0)
    for _ in range(200):
        if len(chosen) == count or not candidates:
            break
        port = secrets.choice(candidates)
        if port not in chosen and port not in exclude and _port_is_free(port):
            chosen.append(port)
    while len(chosen) < count:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((_LOOPBACK, 0))
            port = int(sock.getsockname()[1])
        if port not in chosen and port not in exclude and _port_is_free(port):
            chosen.append(port)
    return chosen


def _tcp_connects(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((_LOOPBACK, port), timeout=timeout):
            return True
    except OSError:
        return False


def _has_exited(proc: subprocess.Popen[bytes]) -> bool:
    """True when ``proc`` has exited; does *not* reap it (see :func:`_wait_exited`)."""
    return _wait_exited(proc, 0.0)


def _wait_exited(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait until ``proc`` has exited *without reaping it*.

    Every child we spawn leads its own session, whose id is its PID.  While the exited leader is
    an unreaped zombie that PID cannot be reused, so signalling the session's process group and
    scanning ``/proc`` for the session's members can only ever hit processes we started.  Only
    :func:`_shutdown` reaps, after the whole session is gone.
    """
    if proc.returncode is not None:
        return True
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        if result is not None:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_INTERVAL)


def _kill_session(session_id: int) -> None:
    """SIGKILL the process group ``session_id`` and any session member in another group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(session_id, signal.SIGKILL)
    for pid in session_members({session_id}):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _shutdown(proc: subprocess.Popen[bytes] | None, timeout: float, graceful: bool) -> None:
    """End ``proc``'s whole session, then reap ``proc``.

    Graceful: SIGTERM the leader (the ``rabbitmq-server`` script traps it and stops the VM
    cleanly), SIGKILL after ``timeout``.  Otherwise SIGKILL at once.  Either way stragglers of
    the session (``erl_child_setup``, ``inet_gethost``, ...) are killed and waited for.
    """
    if proc is None:
        return
    if proc.returncode is None:
        session_id = proc.pid
        if graceful and not _has_exited(proc):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            _wait_exited(proc, timeout)
        deadline = time.monotonic() + 10.0
        _kill_session(session_id)
        while not _wait_exited(proc, 0.0) or session_members({session_id}):
            if time.monotonic() >= deadline:
                left = sorted(session_members({session_id}))
                msg = f"processes {left} of session {session_id} survive SIGKILL"
                raise BrokerNodeError(msg)
            time.sleep(_POLL_INTERVAL)
            _kill_session(session_id)
    proc.wait()


def _spawn(argv: list[str], log: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own session + process group: signal it as a whole
        )


def _clean_environment() -> dict[str, str]:
    """Our environment without the RabbitMQ/Erlang variables the scripts would pick up."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RABBITMQ_", "ERL_")) and key not in _UNPREFIXED_ENV
    }


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:]) or f"(log {path} is empty)"


class LocalEpmd:
    """Our own epmd on loopback, a tracked child: one node's, or shared by a local cluster.

    Nodes on one host find each other through the epmd on the port they all use, so the nodes of
    a cluster share one; it outlives any node that is killed, as the host's epmd would.
    """

    def __init__(self, base_dir: Path, port: int | None = None) -> None:
        self.base_dir = Path(base_dir).absolute()
        self._port = port
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            self._port = free_ports(1, set())[0]
        return self._port

    @property
    def log_file(self) -> Path:
        return self.base_dir / "epmd.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and not _has_exited(self._proc)

    def session_ids(self) -> set[int]:
        proc = self._proc
        return {proc.pid} if proc is not None and proc.returncode is None else set()

    def start(self, deadline: float) -> None:
        """Start epmd (no-op while it runs); `BrokerNodeError` if it does not listen in time."""
        if self.running:
            return
        self.base_dir.mkdir(parents=True, exist_ok=True)
        epmd = shutil.which("epmd") or "epmd"
        self._proc = _spawn(
            [epmd, "-port", str(self.port), "-address", _LOOPBACK],
            self.log_file,
            _clean_environment(),
            self.base_dir,
        )
        while not _tcp_connects(self.port):
            if _has_exited(self._proc) or time.monotonic() >= deadline:
                state = "exited" if _has_exited(self._proc) else "did not start listening"
                msg = f"epmd on port {self.port} {state}.\n--- {self.log_file} ---\n"
                raise BrokerNodeError(msg + _tail(self.log_file))
            time.sleep(_POLL_INTERVAL)

    def stop(self, timeout: float = 10.0, graceful: bool = True) -> None:
        try:
            _shutdown(self._proc, timeout, graceful)
        finally:
            self._proc = None


class LocalRabbitNode:
    """One private RabbitMQ node (plus its own epmd) living under ``base_dir``.

    ``port`` fixes the AMQP port (e.g. for ``nox -s serve``); by default a free one is picked at
    the first :meth:`start` and kept for the object's lifetime.  Use as a context manager, or call
    :meth:`start`/:meth:`stop` (repeatable: data and ports survive a stop) and :meth:`kill`.

    For a cluster (`project.devtools.localcluster`) nodes get a ``node_name``, a shared ``epmd``
    (which they neither start nor stop) and a shared Erlang ``cookie``.
    """

    def __init__(
        self,
        base_dir: Path,
        port: int | None = None,
        *,
        node_name: str | None = None,
        epmd: LocalEpmd | None = None,
        cookie: str | None = None,
    ) -> None:
        self.base_dir = Path(base_dir).absolute()
        self.node_name = node_name or f"periodic-test-{secrets.token_hex(4)}@localhost"
        self._port = port
        self._dist_port: int | None = None
        self._owns_epmd = epmd is None
        self.epmd = epmd or LocalEpmd(self.base_dir)
        self._cookie = cookie
        self._server: subprocess.Popen[bytes] | None = None
        self._atexit_registered = False

    # ----------------------------------------------------------------------------- properties
    @property
    def port(self) -> int:
        """The AMQP port (allocated on first use when none was given)."""
        self._allocate_ports()
        assert self._port is not None
        return self._port

    @property
    def url(self) -> str:
        """``amqp://guest:guest@127.0.0.1:PORT//`` (guest may log in over loopback only)."""
        return f"amqp://guest:guest@{_LOOPBACK}:{self.port}//"

    @property
    def log_file(self) -> Path:
        """The node's console output (appended across restarts); the tail goes into errors."""
        return self.base_dir / "node.log"

    @property
    def running(self) -> bool:
        """True while the ``rabbitmq-server`` process we started is alive."""
        return self._server is not None and not _has_exited(self._server)

    def pids(self) -> set[int]:
        """PIDs of every live process we started (node, its helpers and our epmd)."""
        sessions = {
            proc.pid
            for proc in (self._server,)
            if proc is not None and proc.returncode is None  # unreaped: PID still ours
        }
        if self._owns_epmd:
            sessions |= self.epmd.session_ids()
        return session_members(sessions)

    # ------------------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 60.0) -> None:
        """Start the node (no-op if it already runs) and wait until AMQP clients can log in.

        Raises :class:`BrokerNodeError` with the tail of the node's log when it does not come
        up within ``timeout`` seconds; nothing we started is left running in that case.
        """
        if self.running:
            return
        if not rabbitmq_server_available():
            msg = (
                f"rabbitmq-server is not installed ({RABBITMQ_BIN_DIR}/rabbitmq-server, erl and "
                "epmd are needed): install the Debian package rabbitmq-server"
            )
            raise BrokerNodeError(msg)
        deadline = time.monotonic() + timeout
        self._reap_dead_server()
        self._allocate_ports()
        self._prepare_files()
        if not _port_is_free(self.port):
            msg = f"cannot start {self.node_name}: port {_LOOPBACK}:{self.port} is already in use"
            raise BrokerNodeError(msg)
        self._register_atexit()
        try:
            self._start_epmd(deadline)
            self._start_server()
            self._await_ready(deadline)
        except BaseException:
            self._stop_processes(timeout=10.0, graceful=False)
            raise

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the node gracefully (SIGTERM; SIGKILL after ``timeout`` s) and its epmd.

        Data and ports are kept: a later :meth:`start` brings the same node back.
        """
        self._stop_processes(timeout=timeout, graceful=True)

    def kill(self) -> None:
        """SIGKILL the node and everything it spawned (a crash, for fault tests), and its epmd.

        Persistent messages that were confirmed to a publisher survive this.
        """
        self._stop_processes(timeout=5.0, graceful=False)

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

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<LocalRabbitNode {self.node_name} port={self._port} {state} at {self.base_dir}>"

    # ------------------------------------------------------------------------------ internals
    def _allocate_ports(self) -> None:
        if self._dist_port is not None and self._port is not None:
            return
        exclude = {self._port} if self._port is not None else set()
        exclude.add(self.epmd.port)
        ports = free_ports(1 if self._port is not None else 2, exclude)
        if self._port is None:
            self._port = ports.pop()
        self._dist_port = ports.pop()

    @property
    def dist_port(self) -> int:
        """The Erlang distribution port (clustering traffic)."""
        self._allocate_ports()
        assert self._dist_port is not None
        return self._dist_port

    def rabbitmqctl(
        self, *args: str, timeout: float = 60.0, tool: str = "rabbitmqctl"
    ) -> subprocess.CompletedProcess[str]:
        """Run ``rabbitmqctl -n <this node> ARGS`` (or another CLI of the broker's, `tool`, such
        as ``rabbitmq-queues``) with this node's cookie; never raises on exit status (the
        caller reads ``returncode``, ``stdout`` and ``stderr``)."""
        return subprocess.run(
            [str(RABBITMQ_BIN_DIR / tool), "-n", self.node_name, *args],
            env=self._environment(),
            cwd=self.base_dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _paths(self) -> dict[str, Path]:
        base = self.base_dir
        return {
            "home": base / "home",
            "mnesia": base / "mnesia",
            "logs": base / "log",
            "config": base / "rabbitmq.conf",
            "advanced": base / "advanced.config",  # deliberately never created
            "env": base / "rabbitmq-env.conf",
            "plugins": base / "enabled_plugins",
        }

    def _prepare_files(self) -> None:
        paths = self._paths()
        for key in ("home", "mnesia", "logs"):
            paths[key].mkdir(parents=True, exist_ok=True)
        cookie = paths["home"] / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(self._cookie or secrets.token_hex(16).upper())
            cookie.chmod(0o400)
        paths["config"].write_text(
            "# Written by project.devtools.localbroker for a throwaway node.\n"
            f"listeners.tcp.default = {_LOOPBACK}:{self.port}\n"
            "loopback_users.guest = true\n"
            "log.console = true\n"
            "log.console.level = info\n"
            "log.file.level = info\n"
        )
        paths["env"].write_text("")
        paths["plugins"].write_text("[].\n")

    def _environment(self) -> dict[str, str]:
        paths = self._paths()
        env = _clean_environment()
        env.update(
            HOME=str(paths["home"]),
            RABBITMQ_NODENAME=self.node_name,
            RABBITMQ_NODE_IP_ADDRESS=_LOOPBACK,
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self._dist_port),
            ERL_EPMD_PORT=str(self.epmd.port),
            ERL_EPMD_ADDRESS=_LOOPBACK,
            RABBITMQ_MNESIA_BASE=str(paths["mnesia"]),
            RABBITMQ_LOG_BASE=str(paths["logs"]),
            RABBITMQ_CONFIG_FILE=str(paths["config"]),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(paths["advanced"]),
            RABBITMQ_CONF_ENV_FILE=str(paths["env"]),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(paths["plugins"]),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        return env

    def _spawn(self, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        return _spawn(argv, log, self._environment(), self.base_dir)

    def _start_epmd(self, deadline: float) -> None:
        if self._owns_epmd:
            self.epmd.start(deadline)
        elif not self.epmd.running:
            self._fail(f"the shared epmd on port {self.epmd.port} is not running")

    def _start_server(self) -> None:
        with self.log_file.open("ab") as handle:
            handle.write(f"\n===== starting {self.node_name} at {time.ctime()} =====\n".encode())
        self._server = self._spawn([str(RABBITMQ_BIN_DIR / "rabbitmq-server")], self.log_file)

    def _await_ready(self, deadline: float) -> None:
        assert self._server is not None
        # 1. Poll the AMQP handshake: the listener opens at the very end of the boot sequence.
        while not broker_answers(self.url, timeout=1.0):
            if _has_exited(self._server):
                self._fail("rabbitmq-server exited during startup")
            if time.monotonic() >= deadline:
                self._fail("rabbitmq-server did not accept AMQP connections in time")
            time.sleep(_POLL_INTERVAL)
        # 2. Confirm with the broker's own check (fast now; it fails at once if the node is
        #    not yet registered with epmd, which is why it is not the polling loop).
        remaining = max(5.0, deadline - time.monotonic())
        result = subprocess.run(
            [
                str(RABBITMQ_BIN_DIR / "rabbitmqctl"),
                "-n",
                self.node_name,
                "await_startup",
                "--timeout",
                str(int(remaining)),
            ],
            env=self._environment(),
            cwd=self.base_dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=remaining + 10.0,
            check=False,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace").strip()
            self._fail(f"rabbitmqctl await_startup failed ({result.returncode}): {output}")

    def _fail(self, what: str, log: Path | None = None) -> None:
        log = log or self.log_file
        msg = f"local RabbitMQ node {self.node_name} (port {self._port}): {what}.\n"
        msg += f"--- last lines of {log} ---\n{_tail(log)}"
        raise BrokerNodeError(msg)

    def _reap_dead_server(self) -> None:
        if self._server is not None and _has_exited(self._server):
            # Died on its own: clear out helpers it left behind before starting again.
            _shutdown(self._server, timeout=0.0, graceful=False)
            self._server = None

    def _stop_processes(self, timeout: float, graceful: bool) -> None:
        try:
            _shutdown(self._server, timeout, graceful)
            self._server = None
        finally:
            if self._owns_epmd:  # the node is gone or beyond help
                self.epmd.stop(timeout, graceful)
        self._await_ports_released(timeout)
        if self._atexit_registered:
            atexit.unregister(self._atexit_stop)
            self._atexit_registered = False

    def _await_ports_released(self, timeout: float) -> None:
        """Return once nothing listens on the node's ports any more.

        A killed process can show as a zombie while its other threads are still exiting and
        holding the listening socket; callers (restart on the same port, "the broker refuses
        connections now") need the socket gone, not just the process.
        """
        epmd_port = self.epmd.port if self._owns_epmd else None
        ports = [p for p in (self._port, epmd_port) if p is not None]
        deadline = time.monotonic() + timeout
        while any(_tcp_connects(port, timeout=0.2) for port in ports):
            if time.monotonic() > deadline:
                raise BrokerNodeError(f"ports {ports} still accept connections after stopping")
            time.sleep(0.02)

    def _register_atexit(self) -> None:
        # A safety net for an interpreter that exits without stopping the node (e.g. Ctrl-C).
        if not self._atexit_registered:
            atexit.register(self._atexit_stop)
            self._atexit_registered = True

    def _atexit_stop(self) -> None:
        with contextlib.suppress(Exception):
            self._stop_processes(timeout=10.0, graceful=True)
