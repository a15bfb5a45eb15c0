"""A ``warden serve`` process with limits of its own (small, so the tests cross them quickly), read like the shared
Warden, and how much memory it holds: the kernel's own account of the process (resident set and its peak, which can
be reset)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.support.serve_process import ServeProcess


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

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30.0, **params: Any
    ) -> list[dict[str, Any]]:
        """Poll the interactions API until some item satisfies ``predicate``; return the matching items."""
        deadline = time.monotonic() + timeout
        while True:
            items = [item for item in self.interactions(**params)["items"] if predicate(item)]
            if items:
                return items
            if time.monotonic() > deadline:
                raise AssertionError(f"no interaction matched within {timeout} s for {params}")
            time.sleep(0.05)

    def detail(self, interaction_id: str) -> dict[str, Any]:
        return self._get(f"/api/interactions/{interaction_id}").json()

    def metrics(self) -> str:
        return self._get("/metrics").text

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
    process = LimitedWarden(data_dir, env={**base, **env})
    process.token = env.get("WARDEN_ADMIN_TOKEN")
    return process.start()
