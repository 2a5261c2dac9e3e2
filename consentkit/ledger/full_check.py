"""One verification of everything an auditor is shown, for the desk's "Verify now" and ``report``.

``consentkit verify`` does the same from the command line, with the auditor's own checkpoints
besides: the chain on every core (``parallel.py``), the Merkle tree the same workers hashed
against the stored chunk roots and checkpoints (``treestore.py``), and everything stored beside
the records (``coverage.py``). The outcome names the checkpoint the tree was checked against, so
that the desk's badge says not only *when* the chain was last verified but *against what*.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from . import open_ledger
from .coverage import check_coverage
from .verify import VerifyReport


@dataclass(frozen=True, slots=True)
class FullCheck:
    """What :func:`check_everything` found."""

    report: VerifyReport  # the chain's
    problems: list[str] = field(default_factory=list)  # the tree's and coverage's
    checkpoint: dict[str, Any] | None = None  # the latest stored checkpoint, checked: origin, size

    @property
    def ok(self) -> bool:
        """The chain verified and nothing beside it is wrong."""
        return self.report.ok and not self.problems


async def check_everything(url: str, jobs: int | None = None) -> FullCheck:
    """Verify the ledger at ``url``: the chain, the stored tree and checkpoints, and coverage."""
    from .parallel import verify_with_tree  # worker processes: only when asked for
    from .treestore import check_tree, latest_checkpoint

    report, tree = await asyncio.to_thread(verify_with_tree, url, jobs, ())
    if not report.ok:
        return FullCheck(report)
    ledger = open_ledger(url, create=False)
    try:
        problems: list[str] = []
        if tree is not None:  # a tree is stored: it must be the records' own
            found = await check_tree(ledger, (), tree)
            if found.problem is not None:
                where = f"at seq {found.bad_seq}: " if found.bad_seq is not None else ""
                problems.append(where + found.problem)
        problems += await check_coverage(ledger, report.erased, report.groups)
        made = await latest_checkpoint(ledger)
    finally:
        await ledger.close()
    checkpoint = None
    if made is not None:
        checkpoint = {"origin": made.note.split("\n", 1)[0], "size": made.size, "root": made.root.hex()}
    return FullCheck(report, problems, checkpoint)
