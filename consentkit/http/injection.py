"""Putting the banner into the site's HTML pages (the README's "The banner").

The stylesheet and the Consent Mode defaults go right after ``<head>`` (before any tag of the
page can run); the banner — or, for decided visitors, the "Cookie settings" control — and the
widget go just before ``</body>``. Compressed responses are left alone (we would have to
decompress them), and so are responses to HEAD and those without a body.

What is inserted depends on the visitor, not on the page, so its length is known when the
response starts: the start goes out at once with ``Content-Length`` grown by exactly that much,
and nothing is held back. A page that comes in one message (the usual case) gets one join; one
that comes in chunks is rewritten on the way, in constant memory.
"""

from __future__ import annotations

import re

from starlette.types import Message, Send

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
    """``html`` with ``head`` after its ``<head>`` tag and ``body`` before its last ``</body>``.

    Whatever happens, exactly ``head`` and ``body`` are added: the middleware announces the new
    ``Content-Length`` before the page's body has arrived.
    """
    # The usual page, `<head><meta charset="utf-8">` and one `</body>`, found with C searches
    # alone; anything else through head_end() and body_end().
    at = html.find(b"<head>", 0, 8192)
    h = at + 28 if at >= 0 and html.startswith(b'<meta charset="utf-8">', at + 6) else head_end(html)
    b = html.rfind(b"</body>")
    if b < 0:
        b = body_end(html)
    if h < 0 or (b >= 0 and b < h):
        body, head = head + body, b""
        h = 0
    # Slices of a small page cost less than a memoryview; a large one is not copied twice.
    page: bytes | memoryview = html if len(html) < 65536 else memoryview(html)
    if b < 0:
        return b"".join((page[:h], head, page[h:], body))
    return b"".join((page[:h], head, page[h:b], body, page[b:]))


class StreamInserter:
    """Puts ``head`` and ``body`` into an HTML page that arrives in several body messages.

    Chunk by chunk, in constant memory, where :func:`insert` would put them: ``head`` after
    ``<head>`` (looked for in the first 8 KiB), ``body`` in front of ``</body>`` when it comes
    by — a few bytes are held back so that a tag split between two chunks is still found — or
    at the very end. Exactly ``head`` and ``body`` are added, whatever the page looks like, so
    an announced length stays right.
    """

    __slots__ = ("_body", "_carry", "_head", "_head_done", "_send")

    def __init__(self, send: Send, head: bytes, body: bytes) -> None:
        self._send = send
        self._head = head
        self._body = body
        self._carry = b""
        self._head_done = False

    async def __call__(self, message: Message) -> None:
        """Send one body message of the page, rewritten."""
        if message["type"] != "http.response.body":
            await self._send(message)
            return
        more = message.get("more_body", False)
        data = self._carry + message.get("body", b"")
        if not self._head_done:
            at = head_end(data)
            # Where it goes depends on what follows <head> (a charset declaration stays first):
            # wait for a few more bytes of it, as insert() would see them.
            if at >= 0 and (not more or len(data) >= at + 64 or len(data) > 8192):
                data = data[:at] + self._head + data[at:]
                self._head_done = True
            elif at < 0 and (len(data) > 8192 or not more):
                # No <head> to be found: the stylesheet goes with the banner.
                self._body, self._head_done = self._head + self._body, True
            if self._head_done:
                self._head = b""
        if self._head_done and self._body:
            ends = list(_BODY_END.finditer(data))
            if ends:
                at = ends[-1].start()
                data = data[:at] + self._body + data[at:]
                self._body = b""
        if more:
            keep = _CARRY if self._head_done else 8192
            if not self._head_done or self._body:  # a tag may be split across chunks
                self._carry, data = data[-keep:], data[:-keep]
            else:
                self._carry = b""
            if data:
                await self._send({"type": "http.response.body", "body": data, "more_body": True})
            return
        await self._send({"type": "http.response.body", "body": data + self._body, "more_body": False})
        self._body = b""
