"""Putting the banner into the site's HTML pages (DESIGN §3, "Banner placement").

The stylesheet and the Consent Mode defaults go right after ``<head>`` (before any tag of the
page can run); the banner — or, for decided visitors, the "Cookie settings" control — and the
widget go just before ``</body>``. Compressed responses are left alone (we would have to
decompress them), and so are responses to HEAD and those without a body.

A response with a ``Content-Length`` is held until it is complete (up to ``MAX_BUFFER``), then
sent once with the length fixed. A streamed response is passed on chunk by chunk; the banner
goes in front of ``</body>`` when it comes by (a few bytes are held back so that a tag split
between two chunks is still found), or at the very end.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from starlette.types import Message, Send

MAX_BUFFER = 4 * 1024 * 1024
_HEAD = re.compile(rb"<head(?:\s[^>]*)?>", re.I)
_BODY_END = re.compile(rb"</body\s*>", re.I)
_CHARSET = re.compile(rb"\s*<meta\s+charset\s*=[^>]*>", re.I)
_CARRY = 16  # longer than "</body   >" could reasonably be split


def head_end(html: bytes) -> int:
    """Where to insert into ``<head>`` (-1 if there is none in the first 8 KiB): right after the
    tag, or after a ``<meta charset>`` that follows it, which must stay in the first 1024 bytes."""
    # The usual spellings first, with C searches; the regular expressions only when they miss.
    at = html.find(b"<head>", 0, 8192)
    if at >= 0:
        end = at + 6
    else:
        match = _HEAD.search(html, 0, 8192)
        if match is None:
            return -1
        end = match.end()
    if html.startswith(b'<meta charset="utf-8">', end):
        return end + 22
    if html.find(b"charset", end, end + 64) >= 0:
        meta = _CHARSET.match(html, end)
        if meta is not None:
            return meta.end()
    return end


def body_end(html: bytes) -> int:
    """Where the last ``</body>`` starts (-1 if there is none)."""
    at = html.rfind(b"</body>")
    if at >= 0:
        return at
    ends = list(_BODY_END.finditer(html))
    return ends[-1].start() if ends else -1


def insert(html: bytes, head: bytes, body: bytes) -> bytes:
    """``html`` with ``head`` after its ``<head>`` tag and ``body`` before its last ``</body>``."""
    return insert_parts(html, [head], [body])


def insert_parts(html: bytes, head: list[bytes], body: list[bytes]) -> bytes:
    """``insert`` for lists of pieces: everything is joined once, into one copy."""
    h = head_end(html)
    b = body_end(html)
    if h < 0 or (b >= 0 and b < h):
        body, head = head + body, []
        h = 0
    page = memoryview(html)
    if b < 0:
        return b"".join([page[:h], *head, page[h:], *body])
    return b"".join([page[:h], *head, page[h:b], *body, page[b:]])


def rewritable(start: Message, size: int) -> bool:
    """Whether a page may get the banner: a successful (or error) page with a body, not encoded."""
    status = start["status"]
    if status < 200 or status in (204, 304) or 300 <= status < 400 or size == 0:
        return False
    for key, value in start["headers"]:
        if (
            len(key) == 16
            and key.lower() == b"content-encoding"
            and value.strip().lower() not in (b"", b"identity")
        ):
            return False
    return True


class Injector:
    """Rewrites one HTML response: ``start`` takes the start message, ``body`` each body one.

    ``make_tags()`` gives the ``(head, body)`` bytes to insert; ``send_start`` sends the
    (possibly changed) start message through the middleware's header enforcement.
    """

    __slots__ = (
        "_carry",
        "_chunks",
        "_head_done",
        "_length",
        "_make_tags",
        "_send",
        "_send_start",
        "_size",
        "_start",
        "_tags",
        "passthrough",
    )

    def __init__(
        self,
        send: Send,
        send_start: Callable[[Message], Awaitable[None]],
        make_tags: Callable[[], tuple[bytes, bytes]],
    ) -> None:
        self._send = send
        self._send_start = send_start
        self._make_tags = make_tags
        self._start: Message | None = None
        self._chunks: list[bytes] = []
        self._size = 0
        self._length: int | None = None
        self._carry = b""
        self._head_done = False
        self._tags: tuple[bytes, bytes] | None = None
        self.passthrough = False

    async def begin(self, start: Message, body: Message) -> None:
        """The start message and the first body message."""
        await self.start(start)
        await self.body(body)

    async def start(self, message: Message) -> None:
        """Hold the start message until we know the new length (or stream from now on)."""
        length = None
        for key, value in message["headers"]:
            if key.lower() == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = None
        if not rewritable(message, 1 if length is None else length):
            self.passthrough = True
        if self.passthrough:
            await self._send_start(message)
            return
        self._start = message
        self._length = length
        if length is None:
            # Streamed: headers go now (no length to fix), the body is rewritten on the way.
            message["headers"] = [(k, v) for k, v in message["headers"] if k.lower() != b"content-length"]
            await self._send_start(message)

    async def body(self, message: Message) -> None:
        """Rewrite (or pass on) one body message."""
        if self.passthrough:
            await self._send(message)
            return
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
        if self._length is not None:
            await self._buffered(chunk, more)
        else:
            await self._streamed(chunk, more)

    async def _buffered(self, chunk: bytes, more: bool) -> None:
        self._chunks.append(chunk)
        self._size += len(chunk)
        if more and self._size <= MAX_BUFFER:
            return
        assert self._start is not None
        if more:  # too big to hold: send what we have unchanged and step aside
            self.passthrough = True
            await self._send_start(self._start)
            await self._send(
                {"type": "http.response.body", "body": b"".join(self._chunks), "more_body": True}
            )
            return
        head, tail = self._make_tags()
        html = insert(b"".join(self._chunks), head, tail)
        self._start["headers"] = [
            (k, str(len(html)).encode() if k.lower() == b"content-length" else v)
            for k, v in self._start["headers"]
        ]
        await self._send_start(self._start)
        await self._send({"type": "http.response.body", "body": html, "more_body": False})

    async def _streamed(self, chunk: bytes, more: bool) -> None:
        if self._tags is None:
            self._tags = self._make_tags()
        head, tail = self._tags
        data = self._carry + chunk
        if not self._head_done:
            match = _HEAD.search(data, 0, 8192)
            if match is not None:
                data = data[: match.end()] + head + data[match.end() :]
                self._head_done = True
            elif len(data) > 8192 or not more:
                tail = head + tail  # no <head> to be found: the stylesheet goes with the banner
                self._tags = (b"", tail)
                self._head_done = True
        if self._head_done:
            ends = list(_BODY_END.finditer(data))
            if ends:
                at = ends[-1].start()
                out = data[:at] + self._tags[1] + data[at:]
                self._tags = (b"", b"")
                self._carry = b""
                await self._send({"type": "http.response.body", "body": out, "more_body": more})
                return
        if more:
            keep = 8192 if not self._head_done else _CARRY
            self._carry, out = data[-keep:], data[:-keep]
            if out:
                await self._send({"type": "http.response.body", "body": out, "more_body": True})
            return
        await self._send({"type": "http.response.body", "body": data + self._tags[1], "more_body": False})
