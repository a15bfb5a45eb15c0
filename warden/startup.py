"""What a command checks before it starts: the settings, the data directory and the port.

A mistake found here is a ``StartupError`` whose message is one line naming the setting and what is wrong with it;
``warden`` prints that line and exits with status 2, instead of a traceback from deep inside pydantic, chDB or the
socket layer.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import socket
import time
from pathlib import Path
from typing import IO, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings
from pydantic_settings.exceptions import SettingsError

from warden.workers import reuse_port_socket

S = TypeVar("S", bound=BaseSettings)

LOCK_FILE = "warden.lock"
"""In the data directory: held (``flock``) by the Warden process that uses the directory, and naming its pid. chDB
allows one process per data directory; the lock says which one has it before chDB fails obscurely."""

DATA_DIR_WAIT_S = 60.0
"""How long a Warden waits for the data directory when the Warden that holds it has ended but the processes it
started still hold it (``warden serve`` killed outright: its background process and proxy workers store what they
hold, then end). A Warden still running is said at once."""
FLAGS = {"host": "--host", "port": "--port", "console_port": "--port", "data_dir": "--data-dir"}
"""Settings that a command-line flag can also give: their messages name both."""

_FIELD = re.compile(r'field "(\w+)"')


class StartupError(Exception):
    """A configuration mistake, said in one line."""


def setting_name(field: str) -> str:
    """How a user sets a field: ``WARDEN_PORT``, with the flag when there is one (``--port / WARDEN_PORT``)."""
    env = f"WARDEN_{field.upper()}"
    flag = FLAGS.get(field)
    return f"{flag} / {env}" if flag else env


def load_settings(cls: type[S], **overrides: object) -> S:
    """The settings, or a ``StartupError`` naming each setting that is wrong (never its value: it may be secret)."""
    try:
        settings = cls(**overrides)
    except ValidationError as exc:
        raise StartupError(_describe(exc)) from None
    except SettingsError as exc:
        # pydantic-settings could not decode a value (a dict or a list from the environment must be JSON).
        match = _FIELD.search(str(exc))
        field = setting_name(match.group(1)) if match else "a setting"
        cause = exc.__cause__
        detail = f" ({cause})" if cause is not None else ""
        raise StartupError(f"{field}: not valid JSON{detail}") from None
    except ValueError as exc:  # the configuration file (WARDEN_CONFIG) is missing or of an unknown kind
        raise StartupError(str(exc)) from None
    level = getattr(settings, "log_level", "INFO")
    if not isinstance(logging.getLevelName(str(level).upper()), int):
        raise StartupError(f"WARDEN_LOG_LEVEL: {level!r} is not a log level (DEBUG, INFO, WARNING, ERROR, CRITICAL)")
    return settings


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        field, *rest = [str(p) for p in error["loc"]] or ["settings"]
        where = setting_name(field) + "".join(f"[{p}]" for p in rest)
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def claim_data_dir(path: Path) -> IO[str]:
    """Create the data directory if need be and take its lock; keep the returned file open while the directory is
    in use (the lock goes with the process)."""
    name = setting_name("data_dir")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise StartupError(f"{name}: {path} exists and is not a directory") from None
    except OSError as exc:
        raise StartupError(f"{name}: cannot create {path}: {exc.strerror}") from None
    if not path.is_dir():
        raise StartupError(f"{name}: {path} is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise StartupError(f"{name}: {path} is not writable by this user")
    try:
        lock = (path / LOCK_FILE).open("a+", encoding="utf-8")
    except OSError as exc:
        raise StartupError(f"{name}: cannot write in {path}: {exc.strerror}") from None
    deadline = time.monotonic() + DATA_DIR_WAIT_S
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip()
            if holder.isdigit() and not _running(int(holder)) and time.monotonic() < deadline:
                time.sleep(0.1)  # that Warden has ended; the processes it started are still storing what they held
                continue
            lock.close()
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise StartupError(
                f"{name}: {path} is in use by another Warden{who}; stop it, or give this one another data directory"
            ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


def bind(host: str, port: int, field: str = "port", *, shared: bool = False) -> socket.socket:
    """A listening socket on ``host:port``, bound before anything slow starts: a port in use is said at once, and
    "listening" is only printed once it is true. ``shared``: one of several worker processes on the same port
    (``SO_REUSEPORT``)."""
    port_name, host_name = setting_name(field), setting_name("host")
    if not 0 <= port <= 65535:
        raise StartupError(f"{port_name}: {port} is not a port number (1-65535)")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise StartupError(f"{host_name}: {host!r} is not an address of this machine ({exc.strerror})") from None
    sock = reuse_port_socket(family, kind, proto) if shared else socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            message = f"{port_name}: port {port} on {host} is already in use (by another Warden or another program)"
        elif exc.errno == errno.EACCES:
            message = f"{port_name}: port {port} needs privileges this user does not have; use a port above 1023"
        elif exc.errno == errno.EADDRNOTAVAIL:
            message = f"{host_name}: {host} is not an address of this machine"
        else:
            message = f"{port_name}: cannot listen on {host}:{port}: {exc.strerror}"
        raise StartupError(message) from None
    sock.set_inheritable(True)
    return sock
