"""Server processes: start pinned to a CPU, wait for readiness, read memory, always stop."""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
READY_POLL_S = 0.02
READY_TIMEOUT_S = 120.0
STOP_GRACE_S = 10.0
IDLE_WINDOW_S = 0.25
IDLE_CPU_S = 0.02
"""Idle: less CPU than this over one window (two clock ticks in 0.25 s, under 8 %)."""
IDLE_TIMEOUT_S = 120.0


class ServerFailed(RuntimeError):
    """The server exited or did not become ready in time; the message says which."""


@dataclass(frozen=True)
class Pinning:
    """Which CPU the server and the load generator run on (None: not pinned)."""

    server_cpu: int | None
    client_cpu: int | None

    @classmethod
    def choose(cls, enabled: bool) -> Pinning:
        """Server on the first allowed CPU, wrk (and this process) on the second, if possible."""
        cpus = sorted(os.sched_getaffinity(0))
        if not enabled or len(cpus) < 2 or shutil.which("taskset") is None:
            return cls(None, None)
        return cls(cpus[0], cpus[1])

    def prefix(self, cpu: int | None) -> list[str]:
        """`taskset -c CPU` to run a command on `cpu`, or nothing."""
        return [] if cpu is None else ["taskset", "-c", str(cpu)]


@dataclass(frozen=True)
class ServerSpec:
    """How to run one server: `python ARGS...` with extra environment.

    `{port}` in an argument or an environment value is replaced by the port it gets,
    `{grpc_port}` by a second free port (picked only when some value has it; GRPC_PORT), and
    `{scratch}` by a new empty directory in the benchmark's work directory, one per start
    (made only when some value has it; e.g. PAYLOAD_LOG_DIR).
    """

    name: str
    description: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    checks_predictions: bool = True
    """Whether its answers carry one prediction per row (the raw ASGI server's do not)."""
    cost_window_s: float | None = None
    """COST_WINDOW_SECONDS it runs with, for a server that reports its live cost on /metrics
    (our service); None for the others."""
    measure_grpc: bool = False
    """Whether it is also measured over gRPC (our service's v2 ModelInfer on `{grpc_port}`)."""


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def request(
    port: int, method: str, path: str, body: bytes | None = None, timeout: float = 5.0
) -> tuple[int, bytes]:
    """One HTTP request on a fresh loopback connection: (status, body)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class ServerProcess:
    """One started server; use `running()` so that it is always stopped."""

    def __init__(self, spec: ServerSpec, port: int, log_path: Path, pinning: Pinning) -> None:
        self.spec = spec
        self.port = port
        self.log_path = log_path
        self.scratch: Path | None = None
        """The directory `{scratch}` stands for in this start, if the spec uses it."""
        self.grpc_port: int | None = None
        """The port `{grpc_port}` stands for in this start, if the spec uses it."""
        values = [*spec.env.values(), *spec.args]
        if any("{scratch}" in value for value in values):
            self.scratch = Path(tempfile.mkdtemp(prefix=f"{spec.name}-", dir=log_path.parent))
        if any("{grpc_port}" in value for value in values):
            while (grpc_port := free_port()) == port:
                pass
            self.grpc_port = grpc_port
        fill = {"port": port, "grpc_port": self.grpc_port or "", "scratch": self.scratch or ""}
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            **{k: v.format(**fill) for k, v in spec.env.items()},
        }
        args = [arg.format(**fill) for arg in spec.args]
        argv = [*pinning.prefix(pinning.server_cpu), sys.executable, *args]
        self.started = time.monotonic()
        with log_path.open("wb") as log:
            # A session of its own: Ctrl-C in the terminal reaches us, and we stop it in order.
            self.proc = subprocess.Popen(  # noqa: S603 (our own fixed command line)
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self) -> float:
        """Seconds from process start to the first 200 from GET /readyz (polled every 20 ms)."""
        deadline = self.started + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerFailed(f"{self.spec.name} exited with status {self.proc.returncode}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if request(self.port, "GET", "/readyz", timeout=1.0)[0] == 200:
                    return time.monotonic() - self.started
            time.sleep(READY_POLL_S)
        raise ServerFailed(f"{self.spec.name} not ready after {READY_TIMEOUT_S:.0f} s")

    def rss_mb(self) -> float:
        """Resident memory (VmRSS) in MiB."""
        return self._status_number("VmRSS") / 1024

    def threads(self) -> int:
        """Threads of the server process."""
        return self._status_number("Threads")

    def open_files(self) -> int:
        """File descriptors the server process holds (sockets included)."""
        return len(list(Path(f"/proc/{self.proc.pid}/fd").iterdir()))

    def _status_number(self, key: str) -> int:
        status = Path(f"/proc/{self.proc.pid}/status").read_text(encoding="ascii")
        for line in status.splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
        raise ServerFailed(f"{self.spec.name}: no {key} in /proc/{self.proc.pid}/status")

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server has used so far (all its threads)."""
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text(encoding="ascii")
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)"; utime, stime are 14, 15
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_idle(self) -> float:
        """Wait until the server has finished work a load left behind; returns seconds waited.

        wrk stops with requests still in flight, and a slow server goes on computing them;
        the next measurement must not pay for that.
        """
        started = time.monotonic()
        before = self.cpu_seconds()
        while time.monotonic() - started < IDLE_TIMEOUT_S:
            time.sleep(IDLE_WINDOW_S)
            after = self.cpu_seconds()
            if after - before < IDLE_CPU_S:
                return time.monotonic() - started
            before = after
        raise ServerFailed(f"{self.spec.name} still busy {IDLE_TIMEOUT_S:.0f} s after a load")

    def log_tail(self, lines: int = 20) -> list[str]:
        """The last lines the server wrote to stdout and stderr."""
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
            return text.splitlines()[-lines:]
        return []

    def stop(self) -> None:
        """SIGTERM its process group, then SIGKILL after a grace period.

        The group is signalled only while its leader is alive and not yet reaped, so the id
        cannot belong to anyone else.
        """
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                logger.warning("%s ignored SIGTERM; killing it", self.spec.name)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@contextlib.contextmanager
def running(spec: ServerSpec, log_dir: Path, pinning: Pinning) -> Iterator[ServerProcess]:
    """Start `spec` on a free loopback port; stop it on exit, whatever happens."""
    port = free_port()
    server = ServerProcess(spec, port, log_dir / f"{spec.name}.log", pinning)
    try:
        yield server
    finally:
        server.stop()


def stop_on_signals() -> None:
    """Make Ctrl-C, SIGTERM and SIGHUP unwind the stack, so `finally` blocks stop the servers.

    SIGINT gets Python's own handler even when the shell started us with it ignored (as
    non-interactive shells do for background jobs).
    """

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)
