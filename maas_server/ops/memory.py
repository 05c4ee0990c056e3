"""Giving freed memory back to the system after a request that used a lot of it.

glibc's malloc keeps freed heap memory for reuse rather than returning it, and it raises its mmap
threshold (up to 32 MB) each time a large block is freed, so later large blocks (Pillow allocates
image memory in blocks of up to 16 MB; it caches none of them itself, ``PIL.Image.core.get_blocks_max()``
is 0) come from the heap too. A worker that once decoded big images would stay at that peak for
good. ``malloc_trim(0)`` returns every whole free page of every arena. Elsewhere (macOS, musl)
this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from collections.abc import Callable


def release_freed_memory() -> bool:
    """Return freed heap memory to the system (glibc ``malloc_trim(0)``); True when something was released."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        return trim
    except (OSError, AttributeError):  # no libc found, or one without malloc_trim (musl)
        return None
