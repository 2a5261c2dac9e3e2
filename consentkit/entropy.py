"""Random bytes for ids and salts, drawn from the OS CSPRNG in blocks.

Every ``os.urandom`` call is a system call that releases the GIL, and on a busy server each
release lets the ledger's writer thread in for a whole switch interval. Drawing 8 KiB at a time
keeps that off the request path; the bytes are the CSPRNG's all the same.
"""

from __future__ import annotations

import base64
import os
import threading

_BLOCK = 8192
_lock = threading.Lock()
_buf = b""
_pos = 0


def random_bytes(n: int) -> bytes:
    """``n`` bytes from the operating system's CSPRNG."""
    global _buf, _pos
    with _lock:
        if _pos + n > len(_buf):
            _buf = os.urandom(max(_BLOCK, n))
            _pos = 0
        out = _buf[_pos : _pos + n]
        _pos += n
        return out


def token_urlsafe(nbytes: int) -> str:
    """Like ``secrets.token_urlsafe``: ``nbytes`` random bytes as unpadded URL-safe base64."""
    return base64.urlsafe_b64encode(random_bytes(nbytes)).rstrip(b"=").decode("ascii")


def _reset_after_fork() -> None:
    global _buf, _pos, _lock
    # A forked child must never hand out the parent's remaining bytes again (nor inherit a held lock).
    _buf, _pos, _lock = b"", 0, threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)
