"""A ``warden serve`` process with limits of its own (small, so the tests cross them quickly), read like the shared
Warden, and how much memory it holds: the kernel's own account of the process (resident set and its peak, which can
be reset)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.fakes.upstream import FakeUpstream
from tests.support.serve_process import ServeProcess
from tests.support.warden_server import WardenServer


class LimitedWarden(ServeProcess):
    """``warden serve`` in its own process; ``token``: the admin token it was given, sent with every read."""

    token: str | None = None

    def _get(self, path: str, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = httpx.get(f"{self.url}{path}", params=params, headers=headers, timeout=10)
        response.raise_for_status()
        return response

    def interactions(self, **params: Any) -> dict[str, Any]:
        return self._get("/api/interactions", **params).json()

    wait_for = WardenServer.wait_for

    def detail(self, interaction_id: str) -> dict[str, Any]:
        return self._get(f"/api/interactions/{interaction_id}").json()

    def metrics(self) -> str:
        return self._get("/metrics").text

    @property
    def pids(self) -> list[int]:
        """Every process that holds requests, bodies or events: the proxy workers and the background process."""
        return self.children("warden.proxy_worker") + self.children("warden.background")

    def _status(self, field: str) -> int:
        """``field`` of /proc/<pid>/status, added up over ``pids``."""
        total = 0
        for pid in self.pids:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1]) * 1024
                    break
            else:
                raise AssertionError(f"{field} missing from /proc/{pid}/status")
        return total

    def resident_bytes(self) -> int:
        return self._status("VmRSS")

    def reset_peak(self) -> int:
        """Start measuring a new peak from now; returns the resident bytes now."""
        for pid in self.pids:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        return self.resident_bytes()

    def peak_bytes(self) -> int:
        """The largest resident sets since ``reset_peak``, added up (an upper bound of the peak of the sum)."""
        return self._status("VmHWM")


def limited_warden(data_dir: Path, fakes: tuple[FakeUpstream, ...], **env: str) -> LimitedWarden:
    """Started against the fake upstreams (OpenAI, Anthropic, Gemini, in that order), with ``env`` on top."""
    openai, anthropic, gemini = fakes
    base = {
        "WARDEN_OPENAI_BASE_URL": openai.base_url,
        "WARDEN_ANTHROPIC_BASE_URL": anthropic.base_url,
        "WARDEN_GEMINI_BASE_URL": gemini.base_url,
    }
    process = LimitedWarden(data_dir, env={**base, **env})
    process.token = env.get("WARDEN_ADMIN_TOKEN")
    return process.start()
