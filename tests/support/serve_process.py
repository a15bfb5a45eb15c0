"""``warden serve`` as a real subprocess, for what only a separate process shows (signals, flags, environment)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.warden_server import free_port


class ServeProcess:
    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, args: list[str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.env = {**os.environ, "WARDEN_HOST": "127.0.0.1", **(env or {})}
        self.args = args or []
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> ServeProcess:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "warden.cli",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                *self.args,
            ],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"warden serve exited: {self.proc.stdout.read() if self.proc.stdout else ''}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.proc.kill()
        raise RuntimeError("warden serve did not answer within 60 s")

    def interrupt(self, timeout: float = 60) -> str:
        """Ctrl-C, as a user would; returns everything the process printed."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        output, _ = self.proc.communicate(timeout=timeout)
        return output

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def serve_until_exit(
    data_dir: Path, port: int, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``warden serve`` expected to refuse to start: its exit status, and stdout and stderr apart."""
    return subprocess.run(
        [sys.executable, "-m", "warden.cli", "serve", "--port", str(port), "--data-dir", str(data_dir)],
        env={**os.environ, "WARDEN_HOST": "127.0.0.1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
