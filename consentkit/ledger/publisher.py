"""Signed checkpoints made on a schedule and handed to sinks the site configures.

A checkpoint proves what the ledger held only to someone who kept a copy the operator cannot
recall: so the kit hands each one to every sink — a file to append to (that another party
collects), a URL to POST it to (an auditor's or a witness's service), or a callable — as well as
storing it in the ledger. Nothing of this runs on a decision's path: it is one background task,
started with the application and stopped with it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError, ConsentkitError
from .base import Ledger

log = logging.getLogger("consentkit.ledger")

#: Where a checkpoint goes: a file path to append to, an ``http(s)://`` URL to POST to, or a
#: callable given the note (sync or async).
Sink = str | Path | Callable[[str], Any]
POST_TIMEOUT = 10.0


class CheckpointPublisher:
    """Every ``every`` seconds, when the ledger has grown, sign a checkpoint and publish it."""

    def __init__(
        self,
        ledger: Ledger,
        key: str | Path,
        every: float,
        sinks: Sequence[Sink] = (),
        origin: str | None = None,
    ) -> None:
        from .checkpoints import origin_for
        from .keys import SigningKey, read_private_key

        if every <= 0:
            raise ConfigurationError(f"checkpoint_every must be a number of seconds above 0, not {every!r}")
        text = str(key)
        # A key text, or the path of a private key file (which must be readable by its owner only).
        self.key = SigningKey.parse(text if text.startswith("PRIVATE+KEY+") else read_private_key(Path(text)))
        self.origin = origin_for(origin or self.key.name)
        self.ledger = ledger
        self.every = every
        self.sinks = [_sink(s) for s in sinks]
        self._task: asyncio.Task[None] | None = None
        self._size = -1

    def start(self) -> None:
        """Start the schedule (the kit does this when the application starts)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="consentkit-checkpoints")

    async def aclose(self) -> None:
        """Stop the schedule (the kit does this when the application stops)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def publish(self) -> str | None:
        """Make, store and hand out a checkpoint now, if the ledger grew since the last one."""
        size = await self.ledger.last_seq()
        if size == self._size or size == 0:
            return None
        note = await self.ledger.checkpoint(self.key, self.origin)
        self._size = size
        for sink in self.sinks:
            try:
                await sink(note)
            except Exception:  # one sink down must not stop the others, nor the schedule
                log.exception("a checkpoint sink failed; the checkpoint is stored in the ledger")
        return note

    async def _run(self) -> None:
        while True:
            try:
                await self.publish()
            except ConsentkitError as exc:
                log.warning("no checkpoint this time: %s", exc)
            except Exception:
                log.exception("making a checkpoint failed")
            await asyncio.sleep(self.every)


def _sink(target: Sink) -> Callable[[str], Awaitable[None]]:
    if callable(target):
        call = target

        async def to_callable(note: str) -> None:
            result = call(note)
            if inspect.isawaitable(result):
                await result

        return to_callable
    text = str(target)
    if text.startswith(("http://", "https://")):

        def post(note: str) -> None:
            request = urllib.request.Request(
                text, data=note.encode(), method="POST", headers={"Content-Type": "text/plain; charset=utf-8"}
            )
            with urllib.request.urlopen(request, timeout=POST_TIMEOUT):
                pass

        async def to_url(note: str) -> None:
            await asyncio.to_thread(post, note)

        return to_url
    path = Path(text)

    def append(note: str) -> None:
        with path.open("a", encoding="utf-8") as f:
            f.write(note + "\n")

    async def to_file(note: str) -> None:
        await asyncio.to_thread(append, note)

    return to_file
