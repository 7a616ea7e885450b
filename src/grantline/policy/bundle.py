"""A policy bundle read from a directory: its Rego modules, its merged data and its digest.

The digest is ``"sha256:" + hex(SHA-256(manifest))``; ``manifest`` is the bytes
``grantline-policy-bundle-v1\n`` then, for each file in ascending order of the UTF-8 bytes
of its relative POSIX path: ``hex(SHA-256(content))``, one space, the path, one NUL byte.
Hashes have a fixed length and paths hold no NUL, so a manifest reads back one way only.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grantline.domain.errors import ConfigError

MANIFEST_HEADER = b"grantline-policy-bundle-v1\n"
DATA_FILE = "data.json"
TESTS_DIR = "tests"

# (relative path, mtime ns, ctime ns, size, inode) of every file that counts.
StatFingerprint = tuple[tuple[str, int, int, int, int], ...]


@dataclass(frozen=True, slots=True, eq=False)
class PolicyBundle:
    """The files of one policy directory as read at one moment, and what they add up to."""

    root: Path
    files: dict[str, bytes]
    file_digests: dict[str, str]
    digest: str
    modules: dict[str, str]
    data: dict[str, Any]
    loaded_fingerprint: StatFingerprint

    @classmethod
    def load(cls, directory: Path) -> PolicyBundle:
        """Read the bundle below ``directory``.

        What counts: every ``*.rego`` file except ``*_test.rego``, and every ``data.json``,
        anywhere below except in hidden directories and in the top-level ``tests/`` (which
        holds decision cases). A ``data.json`` in ``a/b/`` is merged at ``data.a.b``, as OPA
        bundles do; two files may not set the same key.

        Raises :class:`ConfigError`, naming the file, when the directory cannot be read,
        holds no ``.rego`` file, or a file is not UTF-8 or not a JSON object without
        duplicate keys.
        """
        # Stat before reading: a change made while reading then shows at the next check.
        fingerprint = stat_fingerprint(directory)
        files = {path: _read(directory, path) for path, *_ in fingerprint}
        if not any(path.endswith(".rego") for path in files):
            raise ConfigError(f"no .rego policy files in {directory}")
        file_digests = {
            path: hashlib.sha256(content).hexdigest() for path, content in files.items()
        }
        return cls(
            root=directory,
            files=files,
            file_digests=file_digests,
            digest=manifest_digest(file_digests),
            modules={p: _decode(directory, p, c) for p, c in files.items() if p.endswith(".rego")},
            data=_merge_data(directory, files),
            loaded_fingerprint=fingerprint,
        )

    def fingerprint_stat(self) -> StatFingerprint:
        """The directory's fingerprint now, from ``stat`` alone. Raises :class:`ConfigError`."""
        return stat_fingerprint(self.root)

    def changed_on_disk(self) -> bool:
        """Whether a file that counts was added, removed or touched since the bundle was read."""
        return self.fingerprint_stat() != self.loaded_fingerprint


def manifest_digest(file_digests: dict[str, str]) -> str:
    """The bundle digest of files given as relative path -> hex SHA-256 (module docstring)."""
    manifest = bytearray(MANIFEST_HEADER)
    for path in sorted(file_digests, key=lambda p: p.encode("utf-8")):
        manifest += f"{file_digests[path]} {path}".encode() + b"\0"
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def stat_fingerprint(directory: Path) -> StatFingerprint:
    """Paths, times, sizes and inodes of the files that count. Raises :class:`ConfigError`."""
    entries = []
    for path in _policy_files(directory):
        try:
            st = (directory / path).stat()
        except OSError as exc:
            raise ConfigError(f"cannot read policy file {directory / path}: {exc}") from exc
        entries.append((path, st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino))
    return tuple(sorted(entries))


def _policy_files(directory: Path) -> list[str]:
    if not directory.is_dir():
        raise ConfigError(f"policy directory {directory} does not exist or is not a directory")
    found = []
    for current, dirs, names in os.walk(directory, onerror=_raise_walk_error):
        relative = Path(current).relative_to(directory)
        dirs[:] = [d for d in dirs if not _skipped_dir(relative, d)]
        found += [(relative / n).as_posix() for n in names if _counts(n)]
    return found


def is_policy_path(path: str) -> bool:
    """Whether the relative POSIX ``path`` names a file that counts in a bundle, as
    :meth:`PolicyBundle.load` finds them; an absolute path or one that climbs out never does."""
    parts = path.split("/")
    if "\0" in path or "\\" in path or any(p in {"", ".", ".."} for p in parts):
        return False
    folders = parts[:-1]
    if any(p.startswith(".") for p in folders) or (folders and folders[0] == TESTS_DIR):
        return False
    return _counts(parts[-1])


def _skipped_dir(parent: Path, name: str) -> bool:
    return name.startswith(".") or (parent == Path() and name == TESTS_DIR)


def _counts(name: str) -> bool:
    if name.startswith("."):
        return False
    return name == DATA_FILE or (name.endswith(".rego") and not name.endswith("_test.rego"))


def _raise_walk_error(exc: OSError) -> None:
    raise ConfigError(f"cannot read policy directory {exc.filename}: {exc.strerror}") from exc


def _read(directory: Path, path: str) -> bytes:
    try:
        return (directory / path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read policy file {directory / path}: {exc}") from exc


def _decode(directory: Path, path: str, content: bytes) -> str:
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"policy file {directory / path} is not UTF-8: {exc}") from exc


def _merge_data(directory: Path, files: dict[str, bytes]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in sorted(p for p in files if p.rsplit("/", 1)[-1] == DATA_FILE):
        document = _parse_json(directory / path, files[path])
        node = merged
        for part in Path(path).parent.parts:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{directory / path} sets a key that another data.json set")
        _merge_into(node, document, directory / path)
    return merged


def _merge_into(target: dict[str, Any], document: dict[str, Any], source: Path) -> None:
    for key, value in document.items():
        if key not in target:
            target[key] = value
        elif isinstance(target[key], dict) and isinstance(value, dict):
            _merge_into(target[key], value, source)
        else:
            raise ConfigError(f"{source} sets {key!r}, which another data.json also sets")


def _parse_json(path: Path, content: bytes) -> dict[str, Any]:
    try:
        document = json.loads(
            content.decode("utf-8"),
            object_pairs_hook=_refuse_duplicates,
            parse_constant=_refuse_constant,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return document


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        duplicates = sorted({k for k, _ in pairs if sum(1 for q, _ in pairs if q == k) > 1})
        # An ambiguous file would mean different things to different JSON readers.
        raise ValueError(f"duplicate keys {duplicates}")
    return document


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
