"""Process memory: give freed heap pages back to the operating system (so a long stream's RSS
stays flat), and read the peak resident memory.

glibc's malloc keeps freed chunks for reuse; ONNX Runtime's decoder allocates tensors of a
new size at every step (the KV cache grows), so freed but retained memory stays resident.
``malloc_trim(0)`` returns every whole free page to the kernel (the streaming benchmark's RSS
is lower with it). Elsewhere (macOS, musl, Windows) this is a no-op.
"""

from __future__ import annotations

import ctypes
import resource
import sys

_trim = None  # libc's malloc_trim once looked up, False where there is none


def trim() -> bool:
    """Release free heap pages (glibc); returns whether anything could be asked of the allocator."""
    global _trim
    if _trim is None:
        _trim = False
        if sys.platform.startswith("linux"):
            try:
                _trim = ctypes.CDLL(None).malloc_trim
                _trim.argtypes, _trim.restype = [ctypes.c_size_t], ctypes.c_int
            except (OSError, AttributeError):  # a libc without malloc_trim
                _trim = False
    if not _trim:
        return False
    _trim(0)
    return True


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB: VmHWM (reset by exec, unlike ru_maxrss,
    which Linux carries over from the parent that launched the process)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
