"""Keys, signed notes and checkpoints (``consentkit.ledger.keys``, ``.notes``, ``.checkpoints``) against
other implementations.

Vectors, and where they come from:

* Go's ``golang.org/x/mod/sumdb/note`` tests (``note_test.go``): the PeterNeumann and EnochRoot
  keys, the signed note of "If you think cryptography is the answer...", the key manglings
  ``NewVerifier`` and ``NewSigner`` must refuse, and the malformed notes ``Open`` must refuse.
* C2SP ``signed-note.md``: the example.com/foo verifier key and the note it verifies; C2SP
  ``tlog-checkpoint.md``: the example checkpoint.
* A checkpoint made with Go's ``note`` package (x/mod v0.9.0, Go 1.19) for this project:
  ``note.GenerateKey`` for the name consentkit/example.org reading the seed bytes 0x00..0x1f
  from its random source, then ``note.Sign`` of the checkpoint of the 1000-leaf tree of
  ``test_tree.py``'s Go vectors, alone and cosigned with the PeterNeumann key; with Go's
  ``tlog.ProveRecord(1000, 513)`` it makes a C2SP ``tlog-proof`` (format from ``tlog-proof.md``).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consentkit.errors import ConfigurationError, ConsentkitError, LedgerError
from consentkit.ledger.checkpoints import (
    TLOG_PROOF_HEADER,
    Checkpoint,
    TlogProof,
    check_tlog_proof,
    format_checkpoint,
    format_tlog_proof,
    parse_checkpoint,
    parse_checkpoint_body,
    parse_tlog_proof,
    sign_checkpoint,
)
from consentkit.ledger.keys import (
    SigningKey,
    SigningKeyError,
    VerifierKey,
    generate_key,
    key_id,
    read_private_key,
    write_private_key,
)
from consentkit.ledger.notes import CheckpointError, open_note, sign_note
from consentkit.ledger.proofs import inclusion_proof
from consentkit.ledger.tree import leaf_hashes, root_from_leaves

# --- Go's sumdb/note test vectors (note_test.go) ----------------------------------------------

PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
)
PETER_SIG = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
ENOCH_SIG = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"

# --- C2SP examples ------------------------------------------------------------------------------

C2SP_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
C2SP_NOTE = (
    "This is an example message.\n\n"
    "— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)
C2SP_CHECKPOINT = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)

# --- made with Go's sumdb/note for this project (see the module docstring) ---------------------

ORIGIN = "consentkit/example.org"
EXAMPLE_SEED = bytes(range(32))
EXAMPLE_SKEY = "PRIVATE+KEY+consentkit/example.org+ac842a8a+AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f"
EXAMPLE_VKEY = "consentkit/example.org+ac842a8a+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
# The root of the Go tlog tree of 1000 records in test_tree.py.
ROOT_1000 = bytes.fromhex("3b93b70ed68de7847cfafb398f3df0cf232fe05dfb117f8a8cf9dc31990ddb3b")
EXAMPLE_CHECKPOINT = (
    "consentkit/example.org\n1000\nO5O3DtaN54R8+vs5jz3wzyMv4F37EX+KjPncMZkN2zs=\n\n"
    "— consentkit/example.org rIQqikvpVskXmWby2TQvoDDMbj0hHsntmmmUBkhwh8AODaZkQOfYlQC/IC4ld/kUDkLXZ0ojbe1CIg55aPLYTuOY4AE=\n"
)
PETER_COSIGNATURE = "— PeterNeumann x08gowZof5RNykZyLtyIbZ7KvesTV8+MTByzCn7uNQxO4Sph3uWZk5qH9zAkkpyDRcI0KkDz03U7DMHZJ+arLbL2MAQ=\n"


def other_key(name: str = ORIGIN) -> tuple[str, str]:
    return generate_key(name)


def reason(excinfo: pytest.ExceptionInfo[CheckpointError]) -> str:
    return excinfo.value.reason


# --- keys ---------------------------------------------------------------------------------------


def test_go_keys_read_and_round_trip():
    peter = SigningKey.parse(PETER_SKEY)
    assert (peter.name, peter.key_id) == ("PeterNeumann", 0xC74F20A3)
    assert peter.text == PETER_SKEY
    assert peter.verifier.text == PETER_VKEY
    assert VerifierKey.parse(PETER_VKEY) == peter.verifier
    assert VerifierKey.parse(ENOCH_VKEY).key_id == 0xAF0CFE78
    assert VerifierKey.parse(C2SP_VKEY).key_id == 0x530D903A
    assert key_id("PeterNeumann", peter.verifier.public_key) == 0xC74F20A3
    assert "AYEKFALV" not in repr(peter)  # the seed stays out of logs


def test_go_generated_key_is_ours_byte_for_byte():
    key = SigningKey(
        ORIGIN, key_id(ORIGIN, SigningKey(ORIGIN, 0, EXAMPLE_SEED).verifier.public_key), EXAMPLE_SEED
    )
    assert key.text == EXAMPLE_SKEY
    assert key.verifier.text == EXAMPLE_VKEY
    assert SigningKey.parse(EXAMPLE_SKEY) == key


def test_generate_key():
    skey, vkey = generate_key(ORIGIN)
    key = SigningKey.parse(skey)
    assert key.name == ORIGIN
    assert key.verifier.text == vkey == str(VerifierKey.parse(vkey))
    assert skey.startswith("PRIVATE+KEY+consentkit/example.org+")
    assert generate_key(ORIGIN) != (skey, vkey)
    for bad in ("", "has space", "a+b", "tab\there", "nl\n"):
        with pytest.raises(SigningKeyError):
            generate_key(bad)


def test_go_verifier_key_manglings_are_refused():
    """Go's TestNewVerifier: every proper substring and every single-byte increment fails."""
    VerifierKey.parse(PETER_VKEY)
    b = PETER_VKEY.encode()
    for i in range(len(b) + 1):
        for j in range(i + 1, len(b) + 1):
            if i != 0 or j != len(b):
                with pytest.raises(SigningKeyError):
                    VerifierKey.parse(b[i:j].decode())
    for i in range(len(b)):
        with pytest.raises(SigningKeyError):
            VerifierKey.parse((b[:i] + bytes([b[i] + 1]) + b[i + 1 :]).decode())
    # Wrong key length and unknown algorithm, each with a key hash made to match.
    with pytest.raises(SigningKeyError):
        VerifierKey.parse("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==")
    with pytest.raises(SigningKeyError, match="unknown signature type 0x65"):
        VerifierKey.parse("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")


def test_go_signer_key_manglings_are_refused():
    """Go's TestNewSigner, likewise."""
    b = PETER_SKEY.encode()
    for i in range(len(b) + 1):
        for j in range(i + 1, len(b) + 1):
            if i == 0 and j == len(b):
                continue
            with pytest.raises(SigningKeyError):
                SigningKey.parse(b[i:j].decode())
    for i in range(len(b)):
        with pytest.raises(SigningKeyError):
            SigningKey.parse((b[:i] + bytes([b[i] + 1]) + b[i + 1 :]).decode())


def test_key_messages_say_what_is_wrong():
    with pytest.raises(SigningKeyError, match="key ID does not match"):
        VerifierKey.parse(PETER_VKEY.replace("c74f20a3", "c74f20a4"))
    with pytest.raises(SigningKeyError, match="key ID does not match"):
        VerifierKey.parse(PETER_VKEY.replace("PeterNeumann", "PeterNeuman"))
    with pytest.raises(SigningKeyError, match="private key, not a verifier key"):
        VerifierKey.parse(PETER_SKEY)
    with pytest.raises(SigningKeyError, match="was a verifier key given"):
        SigningKey.parse(PETER_VKEY)
    with pytest.raises(SigningKeyError, match="8 hex digits"):
        VerifierKey.parse("PeterNeumann+c74f20+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")


# --- signed notes -------------------------------------------------------------------------------


def test_go_note_is_signed_byte_for_byte():
    assert sign_note(GO_TEXT, PETER_SKEY) == GO_TEXT + "\n" + PETER_SIG
    assert sign_note(GO_TEXT, SigningKey.parse(PETER_SKEY)) == GO_TEXT + "\n" + PETER_SIG


def test_go_notes_open():
    both = GO_TEXT + "\n" + PETER_SIG + ENOCH_SIG
    assert open_note(both, PETER_VKEY) == GO_TEXT
    assert open_note(both, ENOCH_VKEY) == GO_TEXT
    assert open_note(both.encode(), VerifierKey.parse(PETER_VKEY)) == GO_TEXT
    with pytest.raises(CheckpointError) as excinfo:
        open_note(GO_TEXT + "\n" + ENOCH_SIG, PETER_VKEY)
    assert reason(excinfo) == "unknown-key"
    assert "EnochRoot+af0cfe78" in str(excinfo.value)
    # Duplicated signatures: the first by the key counts, other keys' are ignored (Go's Open).
    enoch_bad = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    assert (
        open_note(GO_TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + enoch_bad, PETER_VKEY)
        == GO_TEXT
    )
    # Stricter than Go: a failing repeat of our key's signature rejects the note (C2SP's SHOULD).
    peter_bad = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(CheckpointError) as excinfo:
        open_note(GO_TEXT + "\n" + PETER_SIG + peter_bad, PETER_VKEY)
    assert reason(excinfo) == "bad-signature"


def test_c2sp_example_note_opens():
    assert open_note(C2SP_NOTE, C2SP_VKEY) == "This is an example message.\n"


def test_go_bad_notes_are_refused():
    bad_notes = [
        GO_TEXT,
        GO_TEXT + "\n",
        GO_TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + GO_TEXT + "\n" + PETER_SIG,
        b"\xff" + (GO_TEXT + "\n" + PETER_SIG).encode(),
        GO_TEXT
        + "\n"
        + "— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
        GO_TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        GO_TEXT + "\n" + PETER_SIG * 101,
        (GO_TEXT + "\n" + PETER_SIG).replace("\n", "\r\n"),
    ]
    for note in bad_notes:
        with pytest.raises(CheckpointError) as excinfo:
            open_note(note, PETER_VKEY)
        assert reason(excinfo) == "malformed-note", note
    with pytest.raises(CheckpointError, match="Windows line endings"):
        open_note(bad_notes[-1], PETER_VKEY)


@pytest.mark.parametrize("char", [chr(c) for c in range(0x20) if c != 0x0A])
def test_control_characters_are_refused(char):
    # C2SP: a signed note contains no ASCII control character but the newline.
    with pytest.raises(CheckpointError) as excinfo:
        open_note(GO_TEXT.replace(" ", char, 1) + "\n" + PETER_SIG, PETER_VKEY)
    assert reason(excinfo) == "malformed-note"
    with pytest.raises(CheckpointError):
        sign_note(GO_TEXT.replace(" ", char, 1), PETER_SKEY)


def test_go_invalid_and_mismatched_signatures():
    with pytest.raises(
        CheckpointError, match=r"signature by PeterNeumann\+c74f20a3 does not verify"
    ) as excinfo:
        open_note(GO_TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:], PETER_VKEY)
    assert reason(excinfo) == "bad-signature"
    misnamed = PETER_SIG.replace("PeterNeumann", "CarmenSandiego")
    with pytest.raises(CheckpointError, match="key name mismatch") as excinfo:
        open_note(GO_TEXT + "\n" + misnamed, PETER_VKEY)
    assert reason(excinfo) == "unknown-key"
    wrong_hash = PETER_SIG.replace("x08g", "xxxx")
    with pytest.raises(CheckpointError, match="another key of the same name") as excinfo:
        open_note(GO_TEXT + "\n" + wrong_hash, PETER_VKEY)
    assert reason(excinfo) == "unknown-key"


# --- checkpoints --------------------------------------------------------------------------------


def test_go_signed_checkpoint_is_ours_byte_for_byte():
    assert format_checkpoint(ORIGIN, 1000, ROOT_1000) == EXAMPLE_CHECKPOINT.split("\n\n")[0] + "\n"
    assert sign_checkpoint(ORIGIN, 1000, ROOT_1000, EXAMPLE_SKEY) == EXAMPLE_CHECKPOINT
    want = Checkpoint(ORIGIN, 1000, ROOT_1000)
    assert parse_checkpoint(EXAMPLE_CHECKPOINT, EXAMPLE_VKEY) == want
    assert parse_checkpoint(EXAMPLE_CHECKPOINT, EXAMPLE_VKEY, origin=ORIGIN) == want
    # Cosigned by a second key (as a witness would): either key verifies it on its own.
    cosigned = EXAMPLE_CHECKPOINT + PETER_COSIGNATURE
    assert parse_checkpoint(cosigned, EXAMPLE_VKEY) == want
    assert parse_checkpoint(cosigned, PETER_VKEY) == want
    assert want.body == format_checkpoint(ORIGIN, 1000, ROOT_1000)


def test_c2sp_example_checkpoint_body():
    body = C2SP_CHECKPOINT.split("\n\n")[0] + "\n"
    checkpoint = parse_checkpoint_body(body)
    assert (checkpoint.origin, checkpoint.size) == ("example.com/behind-the-sofa", 20852163)
    assert checkpoint.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    # Its key is not published: it is somebody else's signature, named in the message.
    with pytest.raises(CheckpointError, match=r"example\.com/behind-the-sofa\+033de0ae") as excinfo:
        parse_checkpoint(C2SP_CHECKPOINT, EXAMPLE_VKEY)
    assert reason(excinfo) == "unknown-key"


def test_a_checkpoint_signed_by_another_key_is_refused():
    skey, _ = other_key()  # same name as ours: a stolen name, not our key
    with pytest.raises(CheckpointError, match="another key of the same name") as excinfo:
        parse_checkpoint(sign_checkpoint(ORIGIN, 1000, ROOT_1000, skey), EXAMPLE_VKEY)
    assert reason(excinfo) == "unknown-key"
    skey, _ = other_key("someone.else/log")
    with pytest.raises(CheckpointError, match=r"signed by someone\.else/log\+") as excinfo:
        parse_checkpoint(sign_checkpoint(ORIGIN, 1000, ROOT_1000, skey), EXAMPLE_VKEY)
    assert reason(excinfo) == "unknown-key"


@pytest.mark.parametrize(
    "edit",
    [
        ("\n1000\n", "\n1001\n"),
        ("\n1000\n", "\n100\n"),
        ("O5O3DtaN", "O5O3DtaM"),
        ("consentkit/example.org\n", "consentkit/example.com\n"),
    ],
)
def test_an_edited_checkpoint_is_refused(edit):
    with pytest.raises(CheckpointError, match="does not verify") as excinfo:
        parse_checkpoint(EXAMPLE_CHECKPOINT.replace(*edit, 1), EXAMPLE_VKEY)
    assert reason(excinfo) == "bad-signature"


def test_a_verifier_key_with_a_wrong_hash_or_name_is_refused():
    public = VerifierKey.parse(EXAMPLE_VKEY).public_key
    with pytest.raises(SigningKeyError, match="key ID does not match"):
        parse_checkpoint(EXAMPLE_CHECKPOINT, EXAMPLE_VKEY.replace("+ac842a8a+", "+ac842a8b+"))
    with pytest.raises(SigningKeyError, match="key ID does not match"):
        parse_checkpoint(EXAMPLE_CHECKPOINT, EXAMPLE_VKEY.replace("example.org", "example.com"))
    # The same public key under another name is another key (its ID is another too).
    renamed = VerifierKey("consentkit/example.com", key_id("consentkit/example.com", public), public)
    with pytest.raises(CheckpointError) as excinfo:
        parse_checkpoint(EXAMPLE_CHECKPOINT, renamed.text)
    assert reason(excinfo) == "unknown-key"
    # A key whose name and ID are right but whose public key is not (a forged key text).
    forged = VerifierKey(ORIGIN, 0xAC842A8A, VerifierKey.parse(PETER_VKEY).public_key)
    with pytest.raises(CheckpointError) as excinfo:
        parse_checkpoint(EXAMPLE_CHECKPOINT, forged)
    assert reason(excinfo) == "bad-signature"


def test_wrong_origin_is_refused():
    with pytest.raises(
        CheckpointError, match=re.escape("'consentkit/example.org', not the expected 'consentkit/other'")
    ) as e:
        parse_checkpoint(EXAMPLE_CHECKPOINT, EXAMPLE_VKEY, origin="consentkit/other")
    assert reason(e) == "wrong-origin"


def _signed(text: str) -> str:
    """A note signed without sign_note's own checks, to build bodies it would refuse."""
    key = SigningKey.parse(EXAMPLE_SKEY)
    signature = key.key_id.to_bytes(4, "big") + key.sign(text.encode())
    return f"{text}\n— {key.name} {base64.b64encode(signature).decode()}\n"


ROOT_B64 = base64.b64encode(ROOT_1000).decode()


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (GO_TEXT, "needs an origin, a tree size and a root"),
        (f"{ORIGIN}\n1000\n", "needs an origin, a tree size and a root"),
        (f"{ORIGIN}\n01000\n{ROOT_B64}\n", "not a decimal number without leading zeros"),
        (f"{ORIGIN}\n-1\n{ROOT_B64}\n", "not a decimal number"),
        (f"{ORIGIN}\n+1\n{ROOT_B64}\n", "not a decimal number"),
        (f"{ORIGIN}\n1_000\n{ROOT_B64}\n", "not a decimal number"),
        (f"{ORIGIN}\n１０\n{ROOT_B64}\n", "not a decimal number"),
        (f"{ORIGIN}\n1000\n{ROOT_B64[:-4]}\n", "not the base64 of 32 bytes"),
        (f"{ORIGIN}\n1000\n{ROOT_1000.hex()}\n", "not the base64 of 32 bytes"),
        # The same 32 bytes, but with the 2 unused low bits of the last digit set: not canonical.
        (f"{ORIGIN}\n1000\n{ROOT_B64[:-2]}t=\n", "not the base64 of 32 bytes"),
        (f"{ORIGIN}\n1000\n{ROOT_B64}\n\nextension\n", "an extension line is empty"),
    ],
)
def test_a_signed_note_that_is_not_a_checkpoint_is_refused(body, problem):
    with pytest.raises(CheckpointError, match=problem) as excinfo:
        parse_checkpoint(_signed(body), EXAMPLE_VKEY)
    assert reason(excinfo) == "malformed-body"


def test_go_note_is_a_signed_note_but_not_a_checkpoint():
    with pytest.raises(CheckpointError) as excinfo:
        parse_checkpoint(GO_TEXT + "\n" + PETER_SIG, PETER_VKEY)
    assert reason(excinfo) == "malformed-body"


def test_extension_lines_are_kept_and_signed():
    note = _signed(f"{ORIGIN}\n5\n{ROOT_B64}\nwitnessed-by example\n")
    checkpoint = parse_checkpoint(note, EXAMPLE_VKEY)
    assert checkpoint.extensions == ("witnessed-by example",)
    assert checkpoint.body == note.split("\n\n")[0] + "\n"


def test_bad_checkpoint_inputs_are_refused_when_signing():
    for origin, size, root in [
        ("", 1, ROOT_1000),
        ("two\nlines", 1, ROOT_1000),
        ("tab\there", 1, ROOT_1000),
        (ORIGIN, -1, ROOT_1000),
        (ORIGIN, True, ROOT_1000),
        (ORIGIN, 1, ROOT_1000[:31]),
    ]:
        with pytest.raises(CheckpointError):
            sign_checkpoint(origin, size, root, EXAMPLE_SKEY)
    with pytest.raises(CheckpointError):
        sign_note("no newline", EXAMPLE_SKEY)
    with pytest.raises(CheckpointError):
        sign_note("blank\n\nline\n", EXAMPLE_SKEY)


def test_error_classes():
    assert issubclass(CheckpointError, LedgerError)
    assert issubclass(CheckpointError, ConsentkitError)
    assert issubclass(SigningKeyError, ConfigurationError)


origins = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\n"), min_size=1, max_size=40
)


@settings(max_examples=150, deadline=None)
@given(origin=origins, size=st.integers(0, 2**63 - 1), root=st.binary(min_size=32, max_size=32))
def test_checkpoints_round_trip(origin, size, root):
    note = sign_checkpoint(origin, size, root, EXAMPLE_SKEY)
    assert parse_checkpoint(note, EXAMPLE_VKEY, origin=origin) == Checkpoint(origin, size, root)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_single_character_edit_is_refused(data):
    note = EXAMPLE_CHECKPOINT
    at = data.draw(st.integers(0, len(note) - 1))
    new = data.draw(st.characters(blacklist_categories=("Cs",)).filter(lambda c: c != note[at]))
    with pytest.raises(CheckpointError):
        parse_checkpoint(note[:at] + new + note[at + 1 :], EXAMPLE_VKEY)


# --- key files ----------------------------------------------------------------------------------


def test_key_file_is_written_0600_and_read_back(tmp_path):
    path = tmp_path / "log.key"
    old_umask = os.umask(0)  # even with a permissive umask
    try:
        write_private_key(path, EXAMPLE_SKEY)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == EXAMPLE_SKEY + "\n"
    assert read_private_key(path) == EXAMPLE_SKEY
    assert read_private_key(str(path)) == EXAMPLE_SKEY


def test_key_file_is_never_overwritten(tmp_path):
    path = tmp_path / "log.key"
    write_private_key(path, EXAMPLE_SKEY)
    skey, _ = generate_key(ORIGIN)
    with pytest.raises(SigningKeyError, match="already exists"):
        write_private_key(path, skey)
    assert read_private_key(path) == EXAMPLE_SKEY
    with pytest.raises(SigningKeyError):
        write_private_key(tmp_path / "other.key", EXAMPLE_VKEY)  # not a private key
    assert not (tmp_path / "other.key").exists()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o620, 0o602, 0o700 | 0o004])
def test_key_file_readable_by_others_is_refused(tmp_path, mode):
    path = tmp_path / "log.key"
    write_private_key(path, EXAMPLE_SKEY)
    path.chmod(mode)
    with pytest.raises(SigningKeyError, match=rf"permissions {mode:04o}.*chmod 600 {path}"):
        read_private_key(path)


def test_key_file_readable_by_its_owner_only_is_fine(tmp_path):
    path = tmp_path / "log.key"
    write_private_key(path, EXAMPLE_SKEY)
    path.chmod(0o400)
    assert read_private_key(path) == EXAMPLE_SKEY


def test_unusable_key_files(tmp_path):
    with pytest.raises(SigningKeyError, match="no private key file"):
        read_private_key(tmp_path / "missing.key")
    with pytest.raises(SigningKeyError, match="not a regular file"):
        read_private_key(tmp_path)
    garbage = tmp_path / "garbage.key"
    garbage.write_bytes(b"\xff\xfe")
    garbage.chmod(0o600)
    with pytest.raises(SigningKeyError, match="not text"):
        read_private_key(garbage)
    public = tmp_path / "public.key"
    public.write_text(EXAMPLE_VKEY + "\n")
    public.chmod(0o600)
    with pytest.raises(SigningKeyError, match=f"{public}: a private key starts with PRIVATE"):
        read_private_key(public)
    with pytest.raises(SigningKeyError, match="cannot create"):
        write_private_key(tmp_path / "no-such-dir" / "log.key", EXAMPLE_SKEY)


# --- offline proofs (C2SP tlog-proof) ----------------------------------------------------------

# Go sumdb/tlog ProveRecord(1000, 513) over test_tree.py's records (record i = SHA-256 of "i"):
# with the Go-signed EXAMPLE_CHECKPOINT of that tree, a proof file made only of Go's output.
GO_PROOF_513 = [
    bytes.fromhex(h)
    for h in [
        "42cc2d8227dae10999a02e14f9c8dfde18d7d95e5c2cf17faabb7436347ee0f2",
        "22d32b4dae33a9cd2f12df8f791c6ecbfe0ee04f065103d8b2777eb290602c34",
        "1cd82a1e278bc5e934a21845a21b1f46c3e794f804d880ecdae963aca2b30edd",
        "f05c11268bdbcd7eb42edabc9ff2b01d0066b3798bfd30888c8f3d753249f452",
        "11c2aee47696682fb1d6e0bb2607fe47a6d62e87b9db87bea7ceea342f4347c8",
        "089db024d15d3551a774af324a93f632c25cd35aceff7301c799f9c5cf859342",
        "10247c63943310f2c1429060887b9b21ba5b80bb8558289f05a99d04e5dce169",
        "9c2fd00103653ac5870ee03f669b480ca876371fe71ba8fe21cfde08182d27a1",
        "adaecdd834044402c9da50457d5f1b96a9c4470921c7bcc0eff8289542c78f87",
        "cca5fabf2860cf52a877ed610298d8733031daf7756e2ae43c1aafd0c00a5c6c",
    ]
]
RECORD_513 = hashlib.sha256(b"513").hexdigest()
FIRST_NODE = base64.b64encode(GO_PROOF_513[0]).decode()


def test_tlog_proof_of_go_vectors():
    text = format_tlog_proof(513, GO_PROOF_513, EXAMPLE_CHECKPOINT)
    lines = text.split("\n")
    assert lines[:3] == [TLOG_PROOF_HEADER, "index 513", base64.b64encode(GO_PROOF_513[0]).decode()]
    assert text.endswith("\n\n" + EXAMPLE_CHECKPOINT)
    checked = check_tlog_proof(text, RECORD_513, EXAMPLE_VKEY, origin=ORIGIN)
    assert checked == TlogProof(Checkpoint(ORIGIN, 1000, ROOT_1000), 513, tuple(GO_PROOF_513))
    assert parse_tlog_proof(text.encode(), EXAMPLE_VKEY) == checked
    with_extra = format_tlog_proof(513, GO_PROOF_513, EXAMPLE_CHECKPOINT, extra=b"receipt 42")
    assert with_extra.split("\n")[1] == "extra cmVjZWlwdCA0Mg=="
    assert check_tlog_proof(with_extra, RECORD_513, EXAMPLE_VKEY).extra == b"receipt 42"


def test_tlog_proof_of_another_record_or_index_is_refused():
    text = format_tlog_proof(513, GO_PROOF_513, EXAMPLE_CHECKPOINT)
    for record, index in [(hashlib.sha256(b"514").hexdigest(), 513), (RECORD_513, 512), (RECORD_513, 1513)]:
        with pytest.raises(CheckpointError, match="does not show this record") as excinfo:
            check_tlog_proof(format_tlog_proof(index, GO_PROOF_513, EXAMPLE_CHECKPOINT), record, EXAMPLE_VKEY)
        assert reason(excinfo) == "bad-proof"
    flipped = [GO_PROOF_513[0], bytes([GO_PROOF_513[1][0] ^ 1]) + GO_PROOF_513[1][1:], *GO_PROOF_513[2:]]
    with pytest.raises(CheckpointError) as excinfo:
        check_tlog_proof(format_tlog_proof(513, flipped, EXAMPLE_CHECKPOINT), RECORD_513, EXAMPLE_VKEY)
    assert reason(excinfo) == "bad-proof"
    with pytest.raises(CheckpointError) as excinfo:
        check_tlog_proof(text, RECORD_513, EXAMPLE_VKEY, origin="consentkit/other")
    assert reason(excinfo) == "wrong-origin"
    skey, vkey = generate_key(ORIGIN)
    with pytest.raises(CheckpointError) as excinfo:
        check_tlog_proof(text, RECORD_513, vkey)
    assert reason(excinfo) == "unknown-key"
    # A checkpoint re-signed by another key for the same tree does not pass for ours.
    forged = format_tlog_proof(513, GO_PROOF_513, sign_checkpoint(ORIGIN, 1000, ROOT_1000, skey))
    with pytest.raises(CheckpointError) as excinfo:
        check_tlog_proof(forged, RECORD_513, EXAMPLE_VKEY)
    assert reason(excinfo) == "unknown-key"


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda t: t.replace(TLOG_PROOF_HEADER, "c2sp.org/tlog-proof@v2"), "first line"),
        (lambda t: t.replace("index 513", "index 0513"), "index"),
        (lambda t: t.replace("index 513", "seq 514"), "index"),
        (lambda t: t.replace("\n\n", "\n"), "no blank line"),
        (lambda t: t.replace(FIRST_NODE, FIRST_NODE[:-1], 1), "proof line 1"),
        (lambda t: t.replace("index 513\n", "index 513\nAAAA\n"), "proof line 1"),
        (lambda t: t.replace("index 513", "extra %%%\nindex 513"), "extra"),
    ],
)
def test_malformed_tlog_proofs(edit, problem):
    text = edit(format_tlog_proof(513, GO_PROOF_513, EXAMPLE_CHECKPOINT))
    with pytest.raises(CheckpointError, match=problem) as excinfo:
        parse_tlog_proof(text, EXAMPLE_VKEY)
    assert reason(excinfo) == "malformed-proof"
    with pytest.raises(CheckpointError):
        format_tlog_proof(-1, GO_PROOF_513, EXAMPLE_CHECKPOINT)
    with pytest.raises(CheckpointError):
        format_tlog_proof(1, [b"short"], EXAMPLE_CHECKPOINT)


def test_tlog_proof_from_our_own_tree():
    records = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(1000)]
    leaves = leaf_hashes(records)
    root = root_from_leaves(leaves)
    assert root == ROOT_1000
    checkpoint = sign_checkpoint(ORIGIN, 1000, root, EXAMPLE_SKEY)
    assert checkpoint == EXAMPLE_CHECKPOINT
    for index in (0, 513, 999):
        text = format_tlog_proof(index, inclusion_proof(index, 1000, leaves), checkpoint)
        assert check_tlog_proof(text, records[index], EXAMPLE_VKEY).index == index
