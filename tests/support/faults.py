"""Storage faults for real: a small tmpfs to hold a store's directory, filled to the last byte or made immutable.

Needs root (mount, chattr). Where that is impossible the fault tests fail under CI=true and skip locally, like the
Kafka and ClickHouse fixtures, because a store fault test that silently did not run would prove nothing.

- ``Tmpfs(path, size)``: mounts a tmpfs of ``size`` bytes at ``path`` (created), unmounts on exit.
- ``disk_full(path)``: a file takes every free byte of the filesystem holding ``path``; deleted on exit.
- ``read_only(path)``: ``chattr -R +i`` on ``path`` (nothing in it can be created, renamed, written or deleted, even
  by root); ``chattr -R -i`` on exit. A remount read-only is refused while the store holds files open for writing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

FAULT_SECONDS_ENV = "WARDEN_FAULT_SECONDS"
DEFAULT_FAULT_SECONDS = 10.0


def fault_seconds() -> float:
    """How long a store fault lasts in the fault tests (README: WARDEN_FAULT_SECONDS)."""
    return float(os.environ.get(FAULT_SECONDS_ENV, DEFAULT_FAULT_SECONDS))


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)


def require_faults(tmp_path: Path) -> None:
    """Fail (CI) or skip (locally) unless this process can mount a tmpfs and set the immutable flag."""
    problem = None
    if os.geteuid() != 0:
        problem = "not root"
    elif not (shutil.which("mount") and shutil.which("chattr")):
        problem = "mount or chattr missing"
    else:
        probe = tmp_path / "fault-probe"
        try:
            with Tmpfs(probe, 1 << 20):
                (probe / "f").write_text("x")
                with read_only(probe):
                    with contextlib.suppress(PermissionError):
                        (probe / "f").write_text("y")
                    if (probe / "f").read_text() != "x":
                        problem = "chattr +i did not make a file immutable on tmpfs"
        except (OSError, RuntimeError) as exc:
            problem = str(exc)
    if problem is None:
        return
    if _in_ci():
        pytest.fail(f"store fault tests need root to mount a tmpfs and chattr: {problem}", pytrace=False)
    pytest.skip(f"store fault tests need root to mount a tmpfs and chattr: {problem}")


class Tmpfs:
    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size

    def __enter__(self) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        done = _run("mount", "-t", "tmpfs", "-o", f"size={self.size},mode=0755", "tmpfs", str(self.path))
        if done.returncode != 0:
            raise RuntimeError(f"mount tmpfs at {self.path}: {done.stderr.strip()}")
        return self.path

    def __exit__(self, *exc: object) -> None:
        _run("chattr", "-R", "-i", str(self.path))
        if _run("umount", str(self.path)).returncode != 0:
            _run("umount", "-l", str(self.path))  # a process still holding a file: detach now, freed when it exits


@contextlib.contextmanager
def disk_full(path: Path) -> Iterator[Path]:
    filler = path / ".filler"
    stat = os.statvfs(path)
    with filler.open("wb") as handle:
        os.posix_fallocate(handle.fileno(), 0, stat.f_bavail * stat.f_frsize)
    try:
        yield filler
    finally:
        filler.unlink()


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[Path]:
    # Symbolic links (chDB links its databases' directories) cannot carry the flag; chattr reports them and goes on.
    _run("chattr", "-R", "+i", str(path))
    try:
        yield path
    finally:
        _run("chattr", "-R", "-i", str(path))
