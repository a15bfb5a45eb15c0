"""N copies of one server process on one port: a small supervisor.

Each child binds its own listening socket with ``SO_REUSEPORT`` (``reuse_port_socket``), so the kernel spreads new
connections over the children and none of them shares an accept queue or an interpreter with another. The parent
only starts the children, starts again one that ended while it was not asked to stop, and on SIGTERM or SIGINT
passes SIGTERM on and waits for them, up to a deadline, before it kills what is left.

A child that ends too soon after its start, again and again, is not a crash to ride out but a mistake (a setting, a
port): after ``max_quick_exits`` such ends in a row the supervisor stops the others and returns that child's status.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType

Child = subprocess.Popen[bytes] | multiprocessing.Process
"""What ``start_child`` returns: a started child process."""

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

log = logging.getLogger(__name__)


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and ``taskset`` narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


def default_count(reserve: int = 0) -> int:
    """How many children by default: the available cores less ``reserve`` (what other processes of the same service
    need), at least one."""
    return max(1, available_cores() - reserve)


def reuse_port_socket(family: int, kind: int, proto: int = 0) -> socket.socket:
    """A socket that may be bound to an address other processes of the same user bind too (``SO_REUSEPORT``): the
    kernel then hands each new connection to one of them."""
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


def _alive(child: Child) -> bool:
    if isinstance(child, subprocess.Popen):
        return child.poll() is None
    return child.is_alive()


def _code(child: Child) -> int | None:
    return child.returncode if isinstance(child, subprocess.Popen) else child.exitcode


def _status(child: Child) -> int:
    code = _code(child)
    return 0 if code is None else code


def how_it_ended(code: int | None) -> str:
    """A child's end in words: its exit status, or the signal that ended it (a negative ``returncode``)."""
    if code is None:
        return "ended"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def _signal(child: Child, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, ValueError):
        if isinstance(child, subprocess.Popen):
            child.send_signal(sig)
        elif child.pid is not None:
            os.kill(child.pid, sig)


def _reap(child: Child) -> None:
    if isinstance(child, subprocess.Popen):
        child.wait()
    else:
        child.join()


@dataclass
class _Slot:
    index: int
    child: Child
    started: float
    quick_exits: int = 0


class Supervisor:
    """Runs ``count`` children made by ``start_child(index)`` (index 0 … count-1: a child uses it for what must not be
    shared, such as a directory of its own) until SIGTERM / SIGINT or ``stop``.

    ``stop_timeout``: how long the children get to finish after SIGTERM before they are killed. ``restart_delay``:
    the pause before a child that ended is started again (doubling while it keeps ending within ``min_uptime``).
    ``name``: what the children are, in the log lines that say one ended and why the supervisor gave up.
    """

    def __init__(
        self,
        count: int,
        start_child: Callable[[int], Child],
        *,
        stop_timeout: float = 35.0,
        restart_delay: float = 0.5,
        min_uptime: float = 30.0,  # a start on a busy machine (imports, chDB) can take longer than a few seconds
        max_quick_exits: int = 5,
        poll_interval: float = 0.1,
        name: str = "child",
    ) -> None:
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        self.count = count
        self._start_child = start_child
        self.stop_timeout = stop_timeout
        self.restart_delay = restart_delay
        self.min_uptime = min_uptime
        self.max_quick_exits = max_quick_exits
        self.poll_interval = poll_interval
        self.name = name
        self._slots: list[_Slot] = []
        self._stopping = threading.Event()
        self.restarts = 0
        """How many times a child was started again (for logs and tests)."""
        self.gave_up: str | None = None
        """Why ``run`` stopped the children on its own (a child kept ending at its start), or None."""

    @property
    def pids(self) -> list[int]:
        """The children's pids, by index (those not running yet or any more included)."""
        return [slot.child.pid or 0 for slot in self._slots]

    def stop(self) -> None:
        """Ask ``run`` to stop the children and return (thread-safe; what a stop signal does)."""
        self._stopping.set()

    def run(self) -> int:
        """Start the children and keep them running until stopped; returns 0, or the status of a child that kept
        ending at its start."""
        with self._stop_signals():
            status = 0
            try:
                self._slots = [self._start(index) for index in range(self.count)]
                status = self._watch()
            finally:
                self._stop_all()
            return status

    def _start(self, index: int, quick_exits: int = 0) -> _Slot:
        return _Slot(index, self._start_child(index), time.monotonic(), quick_exits)

    def _watch(self) -> int:
        waiting: dict[int, tuple[float, int]] = {}  # index → (when to start it again, quick exits so far)
        while not self._stopping.wait(self.poll_interval):
            now = time.monotonic()
            for slot in self._slots:
                if slot.index in waiting or _alive(slot.child):
                    continue
                _reap(slot.child)
                quick = slot.quick_exits + 1 if now - slot.started < self.min_uptime else 0
                what = f"{self.name} {slot.index} (pid {slot.child.pid}) {how_it_ended(_code(slot.child))}"
                if quick >= self.max_quick_exits:
                    self.gave_up = (
                        f"{what}, the {quick}th time in a row within {self.min_uptime:g} s of its start; "
                        "its own lines above say why"
                    )
                    log.error("%s: stopping", self.gave_up)
                    return _status(slot.child) or 1
                delay = self.restart_delay * (2 ** max(quick - 1, 0))
                log.warning("%s after %.1f s; starting it again in %.1f s", what, now - slot.started, delay)
                waiting[slot.index] = (now + delay, quick)
            for position, slot in enumerate(self._slots):
                due = waiting.get(slot.index)
                if due is not None and due[0] <= now:
                    del waiting[slot.index]
                    self._slots[position] = self._start(slot.index, due[1])
                    self.restarts += 1
        return 0

    def _stop_all(self) -> None:
        """SIGTERM to every child still running, then wait up to ``stop_timeout``; kill what is left."""
        for slot in self._slots:
            if _alive(slot.child):
                _signal(slot.child, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while any(_alive(slot.child) for slot in self._slots) and time.monotonic() < deadline:
            time.sleep(self.poll_interval)
        for slot in self._slots:
            if _alive(slot.child):
                _signal(slot.child, signal.SIGKILL)
            _reap(slot.child)

    @contextlib.contextmanager
    def _stop_signals(self) -> Iterator[None]:
        """SIGTERM / SIGINT stop the supervisor (which passes SIGTERM on: a second SIGINT would make a child skip its
        drain). Only the main thread may set handlers; elsewhere ``stop`` is the way."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handle(_signum: int, _frame: FrameType | None) -> None:
            self._stopping.set()

        previous = {sig: signal.signal(sig, handle) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
