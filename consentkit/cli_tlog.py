"""``consentkit keygen``, ``checkpoint``, ``proof`` and ``check-proof``, and the checkpoint part of
``verify``: the transparency log on the command line.

The crypto modules are imported inside the commands, so that the other commands start as fast
as they did. Every check happens before anything is written: a bad key, key file or checkpoint
ends the command with a message and exit 1, and leaves no file and no ledger row behind.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .cli import _run, ledger_option, main
from .errors import ConsentkitError
from .ledger import RecordFilter, open_ledger

if TYPE_CHECKING:
    from .ledger.checkpoints import Checkpoint
    from .ledger.keys import VerifierKey
    from .ledger.treestore import ChunkHasher

_PROOF_FIELDS = ("seq", "leaf_index", "record_hash", "tree_size", "root_hash", "inclusion", "checkpoint")


def read_verifier_key(value: str) -> VerifierKey:
    """A verifier key given as its text or as the path of a file holding it."""
    from .ledger.keys import VerifierKey

    path = Path(value)
    text = value
    if "+" not in value or path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problem = f"--vkey: {value} is neither a verifier key nor a readable file ({exc})"
            raise click.ClickException(problem) from None
    try:
        return VerifierKey.parse(text)
    except ConsentkitError as exc:
        raise click.ClickException(f"--vkey: {exc}") from None


def read_checkpoint(file: Path, vkey: VerifierKey, origin: str) -> Checkpoint:
    """A checkpoint file, its signature by ``vkey`` verified and its origin checked."""
    from .ledger.checkpoints import parse_checkpoint

    try:
        return parse_checkpoint(file.read_bytes(), vkey, origin=origin)
    except OSError as exc:
        raise click.ClickException(f"cannot read the checkpoint {file}: {exc.strerror}") from None
    except ConsentkitError as exc:
        raise click.ClickException(f"checkpoint {file}: {exc}") from None


@main.command()
@click.option("--name", required=True, help="The key's name (e.g. your site's host name).")
@click.option(
    "--private-out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="New file (mode 0600).",
)
def keygen(name: str, private_out: Path) -> None:
    """Make a checkpoint signing key: the private key goes to a new file readable by you only, the
    verifier key (to publish, and to give auditors) is printed."""
    from .ledger.keys import generate_key, write_private_key

    try:
        private, verifier = generate_key(name)
        write_private_key(private_out, private)
    except ConsentkitError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(verifier)


@main.command()
@ledger_option
@click.option("--key", "key_file", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--origin", "origin_name", help="The log's name (default: the key's name).")
def checkpoint(ledger_url: str, key_file: Path, origin_name: str | None) -> None:
    """Sign a checkpoint of the ledger's current tree, store it in the ledger and print it.

    Auditors keep copies: `consentkit verify --checkpoint FILE` later shows the ledger still
    holds every record the checkpoint covers, unaltered and in order."""
    from .ledger.keys import SigningKey, read_private_key

    try:
        key = SigningKey.parse(read_private_key(key_file))
    except ConsentkitError as exc:
        raise click.ClickException(str(exc)) from None
    from .ledger.checkpoints import origin_for

    origin = origin_for(origin_name or key.name)

    async def go() -> str:
        ledger = open_ledger(ledger_url, create=False)
        try:
            return await ledger.checkpoint(key, origin)
        finally:
            await ledger.close()

    click.echo(_run(go()), nl=False)


async def check_checkpoints(
    ledger_url: str, checkpoints: list[tuple[Path, Checkpoint]], computed: ChunkHasher | None = None
) -> list[str]:
    """Recompute the tree from the records: the stored chunk roots and checkpoints, and each given
    checkpoint, must match it; two checkpoints must be consistent. Returns the problems found,
    each as ``seq N: …`` where the first bad seq can be known. ``computed``: the tree as
    ``verify``'s workers hashed it (see ``check_tree``)."""
    from .ledger.proofs import verify_consistency
    from .ledger.treestore import check_tree, stored_chunk_roots

    ledger = open_ledger(ledger_url, create=False)
    try:
        if (
            not checkpoints
            and not await stored_chunk_roots(ledger, 1)
            and not await ledger.latest_checkpoint()
        ):
            return []  # nothing stored, nothing given: the chain check is all there is
        tree = await check_tree(ledger, [cp.size for _, cp in checkpoints], computed)
        problems = [] if tree.problem is None else [_at(tree.bad_seq, tree.problem)]
        for file, cp in checkpoints:
            if cp.size > tree.records:
                problems.append(
                    _at(
                        tree.records + 1,
                        f"the ledger has {tree.records} records but the checkpoint "
                        f"{file} covers {cp.size} (records were removed)",
                    )
                )
            elif tree.roots[cp.size] != cp.root:
                where = tree.bad_seq if tree.bad_seq is not None and tree.bad_seq <= cp.size else None
                problems.append(
                    _at(
                        where,
                        f"the first {cp.size} records do not match the checkpoint {file} "
                        "(a record at or below that seq was altered, removed or reordered)",
                    )
                )
        if problems:
            return problems
        ordered = sorted(checkpoints, key=lambda item: item[1].size)
        for (old_file, old), (new_file, new) in itertools.pairwise(ordered):
            if old.size == 0:
                continue
            proof = await ledger.consistency(old.size, new.size)
            if not verify_consistency(old.size, new.size, old.root, new.root, proof):
                problems.append(f"the checkpoints {old_file} and {new_file} are not consistent")
        return problems
    finally:
        await ledger.close()


def _at(seq: int | None, problem: str) -> str:
    return f"at seq {seq}: {problem}" if seq is not None else problem


def load_checkpoints(files: tuple[Path, ...], vkey_text: str | None, origin_name: str | None) -> list[Any]:
    """``verify``'s ``--checkpoint`` files, each signed by ``--vkey`` for the log's origin."""
    if not files:
        return []
    if vkey_text is None:
        raise click.ClickException("--checkpoint needs --vkey: the log's verifier key")
    vkey = read_verifier_key(vkey_text)
    from .ledger.checkpoints import origin_for

    origin = origin_for(origin_name or vkey.name)
    return [(file, read_checkpoint(file, vkey, origin)) for file in files]


@main.command()
@ledger_option
@click.option("--receipt", help="The record's receipt (a prefix of its hash).")
@click.option("--seq", type=click.IntRange(min=1), help="The record's seq.")
@click.option("--checkpoint", "checkpoint_file", type=click.Path(dir_okay=False, path_type=Path))
def proof(ledger_url: str, receipt: str | None, seq: int | None, checkpoint_file: Path | None) -> None:
    """Print the inclusion proof of one record in a checkpoint (default: the latest the ledger
    made) as JSON, for `consentkit check-proof`."""
    from .ledger.checkpoints import parse_checkpoint_body
    from .ledger.notes import _split_note

    if (receipt is None) == (seq is None):
        raise click.ClickException("give either --receipt or --seq")
    if receipt is not None and not re.fullmatch(r"[0-9a-f]{8,64}", receipt):
        raise click.BadParameter("a receipt is 8 to 64 lower-case hex digits", param_hint="--receipt")
    note = size = None
    if checkpoint_file is not None:
        try:
            note = checkpoint_file.read_text(encoding="utf-8")
            size = parse_checkpoint_body(_split_note(note)[0]).size
        except (OSError, UnicodeDecodeError, ConsentkitError) as exc:
            raise click.ClickException(f"checkpoint {checkpoint_file}: {exc}") from None

    async def go() -> dict[str, Any]:
        ledger = open_ledger(ledger_url, create=False)
        try:
            number = seq
            if receipt is not None:
                found = [r.seq async for r in ledger.records(RecordFilter(receipt=receipt))]
                if len(found) != 1:
                    problem = "no record has" if not found else f"{len(found)} records have"
                    raise click.ClickException(f"{problem} receipt {receipt}")
                number = found[0]
            assert number is not None
            return await ledger.inclusion_proof(number, size)
        finally:
            await ledger.close()

    result = _run(go())
    if note is not None:
        from .ledger.checkpoints import parse_checkpoint_body as body

        if body(_split_note(note)[0]).root.hex() != result["root_hash"]:
            raise click.ClickException(f"the ledger's first {size} records do not match {checkpoint_file}")
        result["checkpoint"] = note
    if result["checkpoint"] is None:
        raise click.ClickException("the ledger has no checkpoint of that size: give one with --checkpoint")
    click.echo(json.dumps(result, indent=2))


@main.command("check-proof")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--vkey", "vkey_text", required=True, metavar="KEY", help="The verifier key, or a file holding it."
)
@click.option("--origin", "origin_name", help="The log's name (default: the key's name).")
def check_proof(file: Path, vkey_text: str, origin_name: str | None) -> None:
    """Check a proof printed by `consentkit proof`, offline: the checkpoint's signature, and that
    the record is in the tree the checkpoint signs (exit 0 "ok", exit 1 with the reason)."""
    from .ledger.checkpoints import parse_checkpoint
    from .ledger.proofs import verify_inclusion
    from .ledger.tree import leaf_hash

    vkey = read_verifier_key(vkey_text)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or any(name not in data for name in _PROOF_FIELDS):
            raise ValueError(f"a proof is a JSON object with {', '.join(_PROOF_FIELDS)}")
        from .ledger.checkpoints import origin_for

        checkpoint = parse_checkpoint(data["checkpoint"], vkey, origin=origin_for(origin_name or vkey.name))
        index, size, seq = data["leaf_index"], data["tree_size"], data["seq"]
        root, path = bytes.fromhex(data["root_hash"]), [bytes.fromhex(h) for h in data["inclusion"]]
        leaf = leaf_hash(data["record_hash"])
    except (OSError, ValueError, TypeError, ConsentkitError) as exc:
        raise click.ClickException(f"{file}: {exc}") from None
    if (checkpoint.size, checkpoint.root) != (size, root):
        raise click.ClickException(f"{file}: tree_size and root_hash are not the checkpoint's")
    if not isinstance(index, int) or seq != index + 1:
        raise click.ClickException(f"{file}: leaf_index is not seq - 1")
    if not verify_inclusion(leaf, index, size, path, root):
        raise click.ClickException(f"{file}: the inclusion proof does not show record_hash at seq {seq}")
    click.echo(f"ok: record seq {seq} is in the checkpoint of {size} records of {checkpoint.origin}")


def verify_checkpoints_or_exit(ledger_url: str, checkpoints: list[Any], problems: list[str]) -> None:
    """Print the checkpoint findings of ``verify``; exit 1 on the first problem."""
    if problems:
        for line in problems:
            click.echo(f"FAILED {line}", err=True)
        sys.exit(1)
    for file, cp in checkpoints:
        click.echo(f"ok: checkpoint {os.fspath(file)} ({cp.size} records) matches the ledger")
