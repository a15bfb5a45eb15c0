"""A ``warden serve`` process with limits of its own (small, so the tests cross them quickly), and how much memory it
holds: the kernel's own account of the process (resident set and its peak, which can be reset)."""

from __future__ import annotations

from pathlib import Path

from tests.support.serve_process import ServeProcess
from tests.support.warden_server import WardenServer


class LimitedWarden(ServeProcess):
    """``warden serve`` in its own process, read like the shared in-process Warden."""

    interactions = WardenServer.interactions
    wait_for = WardenServer.wait_for
    detail = WardenServer.detail
    metrics = WardenServer.metrics

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _status(self, field: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"{field} missing from /proc/{self.pid}/status")

    def resident_bytes(self) -> int:
        return self._status("VmRSS")

    def reset_peak(self) -> int:
        """Start measuring a new peak from now; returns the resident bytes now."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        return self.resident_bytes()

    def peak_bytes(self) -> int:
        """The largest resident set since ``reset_peak``."""
        return self._status("VmHWM")


def limited_warden(data_dir: Path, fakes: dict[str, str], **env: str) -> LimitedWarden:
    """Started against the fake upstreams (``openai``, ``anthropic``, ``gemini`` base URLs), with ``env`` on top."""
    base = {
        "WARDEN_OPENAI_BASE_URL": fakes["openai"],
        "WARDEN_ANTHROPIC_BASE_URL": fakes["anthropic"],
        "WARDEN_GEMINI_BASE_URL": fakes["gemini"],
    }
    return LimitedWarden(data_dir, env={**base, **env}).start()
