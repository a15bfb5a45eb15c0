"""Worker threads named for the operating system too, so ``top -H``, ``/proc/<pid>/task/*/comm`` and the overhead
benchmark can tell the guard's and the store's threads from the proxy's (Python before 3.14 names them only for
itself)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import threading
from concurrent.futures import ThreadPoolExecutor

_PR_SET_NAME = 15
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def name_native_thread() -> None:
    """Give the calling thread its Python name (cut to the kernel's 15 bytes) at the operating system's level."""
    name = threading.current_thread().name.encode()[:15]
    with contextlib.suppress(AttributeError):  # not Linux: names stay Python's only
        _libc.prctl(_PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)


def named_executor(prefix: str) -> ThreadPoolExecutor:
    """One worker thread, named ``<prefix>_0`` for the operating system as well."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix=prefix, initializer=name_native_thread)
