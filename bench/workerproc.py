"""WorkerProcess: a real `pgworker work` subprocess on bench.tasks, never left running."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import psycopg

from bench.common import REPO


class WorkerFailed(RuntimeError):
    """The worker process exited early, or did not do what the benchmark waited for."""


def worker_command(
    *, concurrency: int, prefetch: int | None = None, poll_interval: float | None = None
) -> list[str]:
    """The `pgworker work` command line; the DSN goes in PGWORKER_DSN, out of `ps`."""
    cmd = [
        sys.executable, "-m", "pgworker", "work",
        "--app", "bench.tasks",
        "--concurrency", str(concurrency),
        "--log-level", "warning",
    ]  # fmt: skip
    if prefetch is not None:
        cmd += ["--prefetch", str(prefetch)]
    if poll_interval is not None:
        cmd += ["--poll-interval", str(poll_interval)]
    return cmd


class WorkerProcess:
    """Starts `pgworker work` with the given flags (or `command`); stops it with SIGTERM,
    kills it if needed.

    Use it as a context manager: whatever happens in the block, the process is gone after.
    PGWORKER_* variables of the caller's environment are not passed on, so only the flags
    given here decide how the worker runs; the DSN travels in PGWORKER_DSN.
    """

    def __init__(
        self,
        dsn: str,
        *,
        concurrency: int,
        prefetch: int | None = None,
        poll_interval: float | None = None,
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
    ) -> None:
        self.command = command or worker_command(
            concurrency=concurrency, prefetch=prefetch, poll_interval=poll_interval
        )
        self._env = {k: v for k, v in os.environ.items() if not k.startswith("PGWORKER_")}
        self._env.update(env or {})
        self._env["PGWORKER_DSN"] = dsn
        self._log: IO[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.spawned_at = 0.0  # time.perf_counter() just before the spawn

    def start(self) -> float:
        """Spawn the process; returns time.perf_counter() taken just before the spawn."""
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self.spawned_at = time.perf_counter()
        self.proc = subprocess.Popen(
            self.command,
            cwd=REPO,
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        return self.spawned_at

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def check_alive(self) -> None:
        """Raise WorkerFailed, with the worker's stderr, if the process has exited."""
        assert self.proc is not None
        code = self.proc.poll()
        if code is not None:
            raise WorkerFailed(f"worker exited with {code}:\n{self.stderr()}")

    def wait_registered(self, conn: psycopg.Connection[Any], *, timeout: float = 30.0) -> float:
        """Wait until its row is in pgworker.workers (it listens and claims from then on)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            row = conn.execute(
                "SELECT 1 FROM pgworker.workers WHERE pid = %s", (self.pid,)
            ).fetchone()
            if row is not None:
                return time.perf_counter()
            time.sleep(0.01)
        raise WorkerFailed(f"worker did not register within {timeout:g} s:\n{self.stderr()}")

    def peak_rss_mib(self) -> float | None:
        """VmHWM of the process (its peak resident set so far), in MiB; None if unknown."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return None

    def stop(self, *, timeout: float = 45.0) -> int:
        """SIGTERM, then wait for the graceful exit; SIGKILL after `timeout`. The exit code."""
        proc = self.proc
        assert proc is not None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise WorkerFailed(
                    f"worker ignored SIGTERM for {timeout:g} s:\n{self.stderr()}"
                ) from None
        return proc.returncode

    def stderr(self, limit: int = 4000) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        text = self._log.read().decode(errors="replace")
        return text[-limit:]

    def close(self) -> None:
        """Kill the process if it still runs, and reap it."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
