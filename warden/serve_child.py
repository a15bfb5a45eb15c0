"""What ``warden serve``'s child processes (the background process and the proxy workers) share: their settings,
the paths they meet at, and ending with their parent.

The parent passes everything through the environment: the settings as the user gave them (flags turned into
``WARDEN_*`` variables) and ``RUN_DIR_ENV``, a private directory (mode 0700) for the unix sockets."""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import signal
import sys
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warden.embedded import ServeSettings
from warden.startup import StartupError, load_settings
from warden.worker_control import worker_socket

RUN_DIR_ENV = "WARDEN_SERVE_RUN_DIR"
PARENT_ENV = "WARDEN_SERVE_PARENT"
HANDOFF_DIR = "handoff"
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Paths:
    run_dir: Path
    handoff: Path

    @property
    def background_socket(self) -> Path:
        return self.run_dir / "background.sock"

    def worker_socket(self, index: int) -> Path:
        return worker_socket(self.run_dir, index)

    def worker_log(self, index: int) -> Path:
        return self.handoff / f"worker-{index}"


def paths(settings: ServeSettings, run_dir: Path | None = None) -> Paths:
    return Paths(run_dir or Path(os.environ[RUN_DIR_ENV]), settings.data_dir / HANDOFF_DIR)


def settings() -> ServeSettings:
    from plumbing import logs
    from services.detection.credentials import scrub_credentials

    loaded = load_settings(ServeSettings)
    logs.configure(loaded.log_level, scrub_credentials)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per console request forwarded
    return loaded


def prepare() -> None:
    """End with the parent: a ``warden serve`` killed outright (SIGKILL) sends its children SIGTERM, so each stops in
    its own order instead of running on without it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the parent's stop is the only way
        pass
    parent = os.environ.get(PARENT_ENV)
    if parent and os.getppid() != int(parent):
        sys.exit(0)  # the parent was gone before the death signal was set up


def generation(run_dir: Path) -> int:
    """This ``warden serve`` run, as a number (its run directory is made afresh for each run)."""
    return int.from_bytes(hashlib.blake2b(str(run_dir).encode(), digest_size=7).digest(), "little") or 1


def run_service(main: Coroutine[Any, Any, None]) -> int:
    """Run a child's service; a mistake found at its start (the port taken since the parent looked) is one line and
    status 2, as from ``warden`` itself."""
    from warden.cli import run_service as run

    try:
        run(main)
    except StartupError as exc:
        print(f"warden: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0
