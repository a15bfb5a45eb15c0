"""``warden serve`` as a real subprocess, for what only a separate process shows (signals, flags, environment)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
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
        self._output: list[str] = []
        self._listening = threading.Event()
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 180  # a loaded machine starts the processes slowly
        # Every proxy worker listens once the banner is printed.
        while not self._listening.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                code = self.proc.poll()
                self.kill()
                self._reader.join(10)  # what it printed last says why
                raise RuntimeError(f"warden serve did not start (exit status {code}): {self.output()}")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._reader.join(10)
                raise RuntimeError(f"warden serve exited with status {self.proc.returncode}: {self.output()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.kill()
        raise RuntimeError("warden serve did not answer within 180 s")

    def _read_output(self) -> None:
        """Keeps the pipe drained (the processes would block on a full one) and notes the banner."""
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self._output.append(line)
            if line.startswith("Warden (embedded) listening"):
                self._listening.set()

    def output(self) -> str:
        return "".join(self._output)

    def interrupt(self, timeout: float = 60) -> str:
        """Ctrl-C, as a user would; returns everything the process printed."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=timeout)
        self._reader.join(10)  # the pipe ends once every process that shared it has exited
        return self.output()

    def children(self, module: str) -> list[int]:
        """The pids of the processes ``warden serve`` started that run ``module`` (``warden.background``,
        ``warden.proxy_worker``)."""
        assert self.proc is not None
        found: list[int] = []
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            for pid in (task / "children").read_text().split():
                try:
                    command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                except FileNotFoundError:
                    continue
                if module.encode() in command:
                    found.append(int(pid))
        return found

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
