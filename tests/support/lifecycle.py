"""What every restartable test service (Kafka broker, ClickHouse server, their containers) offers on top of its own
``start`` / ``stop`` / ``kill`` / ``close``: restart, async variants that keep the caller's event loop running while
the service goes down and comes back, and use as a context manager (start on enter, close on exit)."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self


def tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


class Lifecycle:
    def start(self) -> None:
        raise NotImplementedError

    def stop(self, timeout: float = 60.0) -> None:
        raise NotImplementedError

    def kill(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def restart(self, timeout: float = 60.0) -> None:
        """Graceful stop then start: the same ports, the same data."""
        self.stop(timeout)
        self.start()

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    async def astop(self, timeout: float = 60.0) -> None:
        await asyncio.to_thread(self.stop, timeout)

    async def akill(self) -> None:
        await asyncio.to_thread(self.kill)

    async def arestart(self, timeout: float = 60.0) -> None:
        await self.astop(timeout)
        await self.astart()

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class ProcessService(Lifecycle):
    """A service run as one child process (``_spawn`` starts it, ``wait_ready`` waits for it), logging to
    ``log_path``, with its data in ``workdir`` (deleted on close if this object created it)."""

    _proc: subprocess.Popen[bytes] | None
    _lock: threading.Lock
    _owns_workdir: bool
    workdir: Path
    log_path: Path

    def _spawn(self) -> None:
        raise NotImplementedError

    error: type[Exception] = RuntimeError
    """What wait_ready raises."""
    start_timeout: float = 60.0
    poll_interval = 0.2

    def _probe(self) -> str | None:
        """None once the service answers, else why not yet."""
        raise NotImplementedError

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until ``_probe`` says ready; if the process dies or the time runs out, kill it and raise ``error``
        with the log's tail."""
        limit = timeout or self.start_timeout
        deadline = time.monotonic() + limit
        last = "no answer yet"
        while True:
            ended = self._exit_code()
            if ended is not None:
                self.kill()
                raise self.error(f"{self!r} {ended} during start-up; last log lines:\n{self.log_tail()}")
            answer = self._probe()
            if answer is None:
                return
            last = answer
            if time.monotonic() > deadline:
                self.kill()
                raise self.error(f"{self!r} not ready after {limit:.0f}s ({last}); last log lines:\n{self.log_tail()}")
            time.sleep(self.poll_interval)

    def _ended(self, proc: subprocess.Popen[bytes], graceful: bool) -> None:
        """Called (under the lock) once the process is gone: by stop() (graceful) or kill()."""

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.is_running and self._proc else None

    def _exit_code(self) -> str | None:
        """None while the process lives, else how it ended."""
        if self._proc is None:
            return "not started"
        code = self._proc.poll()
        if code is None:
            return None
        how = " (SIGTERM from another process)" if code in (143, -signal.SIGTERM) else ""
        return f"exited with code {code}{how}"

    def start(self) -> None:
        """Start the process (the same ports and data as before, if it ran) and block until it is ready."""
        with self._lock:
            if self.is_running:
                return
            self._spawn()
        self.wait_ready()

    def stop(self, timeout: float = 60.0) -> None:
        """Graceful stop (SIGTERM); SIGKILL only if it overstays ``timeout``."""
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            if proc.poll() is not None:
                # It ended without being asked: whatever the test failed on next, this is why (the log goes with
                # the directory).
                ended = f"{self!r} had {self._exit_code()} before stop(); its log ends:"
                print(f"{ended}\n{self.log_tail()}", file=sys.stderr)
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            self._proc = None
            self._ended(proc, graceful=proc.returncode != -signal.SIGKILL)

    def kill(self) -> None:
        """Hard crash (SIGKILL): the next start() recovers the same data."""
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            self._proc = None
            self._ended(proc, graceful=False)

    def close(self) -> None:
        """Stop the process and delete its directory (only if this object created it)."""
        self.stop()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return tail(self.log_path.read_text(errors="replace"), lines)
        except FileNotFoundError:
            return "(no log yet)"


def run_in_foreground(service: ProcessService, banner: Callable[[], str], *, keep_data: bool) -> int:
    """``--run`` of a service module: start it, print ``banner()``, wait for Ctrl-C (or the service's death), then
    stop it (``keep_data``: a directory given by the user) or close it (a temp dir)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        service.start()
        print(f"{banner()}\n(Ctrl-C to stop)", flush=True)
        while not stop.wait(1.0):
            if not service.is_running:
                print(f"exited; last log lines:\n{service.log_tail()}", file=sys.stderr)
                return 1
    finally:
        if keep_data:
            service.stop()
        else:
            service.close()
    return 0
