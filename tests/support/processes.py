"""Warden's distributed commands (`warden ingress`, `warden logger`, …) as real subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx


class WardenProcess:
    def __init__(self, args: list[str], env: dict[str, str], ready_url: str | None = None) -> None:
        self.args = args
        self.env = {**os.environ, **env}
        self.ready_url = ready_url
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = b""

    def start(self, timeout: float = 60) -> WardenProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "warden.cli", *self.args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        if self.ready_url:
            deadline = time.monotonic() + timeout
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"warden {self.args[0]} exited: {self.output()}")
                try:
                    if httpx.get(self.ready_url, timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"warden {self.args[0]} not ready: {self.output()}")
                time.sleep(0.1)
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def interrupt(self, timeout: float = 60) -> str:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout)
        return self.output()

    def output(self) -> str:
        if self.proc is not None and self.proc.stdout is not None and self.proc.poll() is not None:
            self.log += self.proc.stdout.read()
        return self.log.decode(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
