"""Signed notes and checkpoints against the C2SP and Go reference examples."""

from __future__ import annotations

import base64

import pytest

from grantline.domain.errors import IntegrityError
from grantline.evidence.note import (
    NoteKey,
    checkpoint_text,
    open_checkpoint,
    open_note,
    sign_note,
)
from grantline.evidence.signer import LocalEd25519Signer, raw_public_bytes

# golang.org/x/mod/sumdb/note: the PeterNeumann key pair and its published note.
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2"
    "pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
# c2sp.org/signed-note, the example.
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6T"
    "fXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)


def go_signer() -> LocalEd25519Signer:
    seed = base64.b64decode(GO_SKEY.split("+", 4)[4])[1:]
    return LocalEd25519Signer.from_seed(seed)


def test_the_reference_notes_open_with_their_keys() -> None:
    assert open_note(GO_NOTE, NoteKey.parse(GO_VKEY)) == GO_TEXT
    assert open_note(SPEC_NOTE, NoteKey.parse(SPEC_VKEY)) == "This is an example message.\n"


def test_signing_reproduces_the_go_note_byte_for_byte() -> None:
    signer = go_signer()
    public = raw_public_bytes(signer.public_key())
    assert NoteKey("PeterNeumann", public).encode() == GO_VKEY
    assert sign_note(GO_TEXT, "PeterNeumann", signer, public) == GO_NOTE


def test_a_changed_text_or_another_key_does_not_open() -> None:
    with pytest.raises(IntegrityError, match="does not verify"):
        open_note(GO_NOTE.replace("answer", "question"), NoteKey.parse(GO_VKEY))
    with pytest.raises(IntegrityError, match="no signature by"):
        open_note(GO_NOTE, NoteKey.parse(SPEC_VKEY))


@pytest.mark.parametrize(
    "vkey",
    [
        GO_VKEY[:-1],
        GO_VKEY.replace("c74f20a3", "c74f20a4"),
        "PeterNeumann+c74f20a3",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_mangled_verifier_keys_are_refused(vkey: str) -> None:
    with pytest.raises(IntegrityError):
        NoteKey.parse(vkey)


def test_a_checkpoint_round_trips_and_names_its_origin() -> None:
    signer = LocalEd25519Signer.from_seed(bytes(range(32)))
    public = raw_public_bytes(signer.public_key())
    root = bytes(range(32))
    note = sign_note(
        checkpoint_text("grantline.test/log", 42, root), "grantline.test/log", signer, public
    )
    assert note.startswith(
        "grantline.test/log\n42\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n\n"
    )
    opened = open_checkpoint(
        note, NoteKey("grantline.test/log", public), origin="grantline.test/log"
    )
    assert (opened.origin, opened.size, opened.root) == ("grantline.test/log", 42, root)
    with pytest.raises(IntegrityError, match="not 'other'"):
        open_checkpoint(note, NoteKey("grantline.test/log", public), origin="other")


def test_a_signature_line_that_is_not_base64_is_a_finding_not_a_crash() -> None:
    forged = GO_TEXT + "\n\u2014 PeterNeumann \u00e9\u00e9\u00e9\n"
    with pytest.raises(IntegrityError, match="malformed signature"):
        open_note(forged, NoteKey.parse(GO_VKEY))
    signer = go_signer()
    public = raw_public_bytes(signer.public_key())
    odd = sign_note("log\n\uff15\nAAAA\n", "log", signer, public)
    with pytest.raises(IntegrityError, match="size or root"):
        open_checkpoint(odd, NoteKey("log", public))
