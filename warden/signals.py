"""Waiting for Ctrl-C or SIGTERM in the long-running commands that are not HTTP servers."""

from __future__ import annotations

import asyncio
import signal


async def until_stopped() -> None:
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopped.set)
    try:
        await stopped.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
