"""Deliberate slowness, for the overhead benchmark only (``bench/overhead.py --slow-guard-ms / --slow-store-ms``):
it shows what a slow guard or a slow store does to the proxy's latency. Off unless its variable is set; no setting of
Warden's own reads these.

- ``WARDEN_TEST_SLOW_GUARD_MS``: every batch the guard scores takes this much longer, spent computing in Python (it
  holds the interpreter as a heavy detector would).
- ``WARDEN_TEST_SLOW_STORE_MS``: every insert into chDB waits this much longer first (as a slow disk would; the
  interpreter is free meanwhile).
"""

from __future__ import annotations

import os
import time

SLOW_GUARD_S = float(os.environ.get("WARDEN_TEST_SLOW_GUARD_MS", "0") or 0) / 1000
SLOW_STORE_S = float(os.environ.get("WARDEN_TEST_SLOW_STORE_MS", "0") or 0) / 1000


def slow_guard() -> None:
    if SLOW_GUARD_S > 0:
        deadline = time.perf_counter() + SLOW_GUARD_S
        while time.perf_counter() < deadline:  # computing, not sleeping: the interpreter stays taken
            pass


def slow_store() -> None:
    if SLOW_STORE_S > 0:
        time.sleep(SLOW_STORE_S)
