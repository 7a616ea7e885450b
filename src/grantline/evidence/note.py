"""Signed notes and checkpoints in the C2SP forms (c2sp.org/signed-note, tlog-checkpoint).

A checkpoint is the note text ``<origin>\\n<tree size>\\n<base64 root hash>\\n``, followed by a
blank line and one signature line per signer: ``— <key name> <base64(key id || signature)>``.
The signature is Ed25519 over the text, exactly; the key id is the first four bytes of
SHA-256(key name || 0x0A || 0x01 || public key). A verifier key is published as
``<name>+<hex key id>+<base64(0x01 || public key)>``. These are the forms Go's
``golang.org/x/mod/sumdb/note`` and transparency-log witnesses read.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from grantline.domain.errors import IntegrityError
from grantline.evidence.merkle import HASH_SIZE
from grantline.evidence.signer import Signer

_ED25519 = b"\x01"
_DASH = "\u2014 "
_NAME = re.compile(r"[^\s+]+")
_MAX_NOTE = 64 * 1024
_SIZE = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True, slots=True)
class NoteKey:
    """A verifier key: the name signatures carry, and the Ed25519 public key."""

    name: str
    public_key: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public_key)

    def encode(self) -> str:
        """``<name>+<hex key id>+<base64(0x01 || key)>``."""
        material = base64.b64encode(_ED25519 + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{material}"

    @classmethod
    def parse(cls, text: str) -> NoteKey:
        """Read an encoded verifier key. Raises :class:`IntegrityError` if malformed."""
        name, _, rest = text.strip().partition("+")
        hex_id, _, material = rest.partition("+")
        try:
            raw = base64.b64decode(material, validate=True)
            expected_id = bytes.fromhex(hex_id)
        except ValueError as exc:  # binascii.Error is one
            raise IntegrityError(f"malformed note verifier key: {exc}") from exc
        key = cls(name, raw[1:])
        if (
            not _NAME.fullmatch(name)
            or len(expected_id) != 4
            or raw[:1] != _ED25519
            or len(raw) != 33
            or key.key_id != expected_id
        ):
            raise IntegrityError("malformed note verifier key (name, id or Ed25519 key)")
        return key


@dataclass(frozen=True, slots=True)
class CheckpointNote:
    """What a verified checkpoint note states."""

    origin: str
    size: int
    root: bytes
    text: str


def key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + _ED25519 + public_key).digest()[:4]


def checkpoint_text(origin: str, size: int, root: bytes) -> str:
    if not _NAME.fullmatch(origin.replace("+", "x")):
        raise ValueError(f"a checkpoint origin is one line without spaces, got {origin!r}")
    return f"{origin}\n{size}\n{base64.b64encode(root).decode('ascii')}\n"


def sign_note(text: str, name: str, signer: Signer, public_key: bytes) -> str:
    """``text`` with one signature line by ``signer`` under key ``name``."""
    if not text.endswith("\n") or "\n\n" in text:
        raise ValueError("note text must end with a newline and hold no blank line")
    signature = signer.sign(text.encode("utf-8"))
    blob = base64.b64encode(key_id(name, public_key) + signature).decode("ascii")
    return f"{text}\n{_DASH}{name} {blob}\n"


def open_note(note: str, key: NoteKey) -> str:
    """The text of ``note`` if ``key`` signed it. Raises :class:`IntegrityError` otherwise.

    Signature lines of other keys are allowed (cosigners) and ignored.
    """
    if len(note) > _MAX_NOTE or not note.endswith("\n"):
        raise IntegrityError("not a signed note (too long, or no final newline)")
    text, separator, signatures = note.rpartition("\n\n")
    if not separator:
        raise IntegrityError("not a signed note: no blank line before the signatures")
    text += "\n"
    for line in signatures.splitlines():
        if not line.startswith(_DASH):
            raise IntegrityError(f"malformed signature line: {line[:60]!r}")
        name, _, blob = line[len(_DASH) :].partition(" ")
        if name != key.name:
            continue
        try:
            raw = base64.b64decode(blob, validate=True)
        except ValueError as exc:  # binascii.Error, or non-ASCII text
            raise IntegrityError("malformed signature in the note") from exc
        if raw[:4] != key.key_id:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(key.public_key).verify(raw[4:], text.encode())
        except InvalidSignature as exc:
            raise IntegrityError(f"the note's signature by {name} does not verify") from exc
        return text
    raise IntegrityError(f"the note carries no signature by {key.name}")


def open_checkpoint(note: str, key: NoteKey, origin: str | None = None) -> CheckpointNote:
    """Verify a checkpoint note and read it. Raises :class:`IntegrityError`."""
    text = open_note(note, key)
    lines = text.split("\n")[:-1]
    if len(lines) < 3:
        raise IntegrityError("a checkpoint has an origin, a tree size and a root hash")
    name, size, root_b64 = lines[:3]
    try:
        root = base64.b64decode(root_b64, validate=True)
    except ValueError as exc:
        raise IntegrityError("the checkpoint's root hash is not base64") from exc
    if not _SIZE.fullmatch(size) or len(root) != HASH_SIZE:
        raise IntegrityError("the checkpoint's tree size or root hash is malformed")
    if origin is not None and name != origin:
        raise IntegrityError(f"the checkpoint is for log {name!r}, not {origin!r}")
    return CheckpointNote(name, int(size), root, text)
