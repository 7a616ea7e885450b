"""The OPA bundle of a policy directory: the tar.gz an OPA bundle server serves.

It holds ``/.manifest`` (``revision``, ``roots``, and the Grantline digest under
``metadata``), every file that counts towards the bundle digest at its own path (``*.rego``,
and each ``data.json`` where OPA reads it: ``a/b/data.json`` is ``data.a.b``), and
``/grantline_index/data.json``, the lookup index the embedded engine derives at load time
(the policy reads ``data.grantline_index``). The index is built for OPA, whose
``crypto.sha256`` hashes a string's UTF-8 bytes (rego-cpp hashes its JSON-escaped form).

The archive is deterministic: entries sorted by path, owner root, mode 0644, times zero,
gzip header without name or time; the same policy and revision give the same bytes.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
from dataclasses import dataclass
from typing import Any

from grantline.domain.errors import ConfigError
from grantline.policy.bundle import PolicyBundle
from grantline.policy.index import INDEX_KEY, with_index
from grantline.policy.rego_scan import package_of

MANIFEST = ".manifest"
INDEX_DATA = f"{INDEX_KEY}/data.json"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class OpaBundle:
    """The files of an OPA bundle (path in the archive, without the leading ``/``)."""

    revision: str
    roots: tuple[str, ...]
    files: dict[str, bytes]

    def tar_gz(self) -> bytes:
        """The bundle as a deterministic gzipped tar archive."""
        raw = io.BytesIO()
        with (
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as zipped,
            tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as archive,
        ):
            for path in sorted(self.files):
                archive.addfile(_entry(path, len(self.files[path])), io.BytesIO(self.files[path]))
        return raw.getvalue()


def opa_bundle(bundle: PolicyBundle, revision: str | None = None) -> OpaBundle:
    """The OPA bundle of ``bundle``; its revision defaults to the bundle digest.

    Raises :class:`ConfigError` for a revision that is empty or holds control characters,
    a module without a package, or configuration the index refuses.
    """
    revision = bundle.digest if revision is None else revision
    if not revision or _CONTROL.search(revision):
        raise ConfigError("a bundle revision must be a non-empty string without control characters")
    index = with_index(bundle.data)[INDEX_KEY]
    roots = _roots(bundle)
    manifest = {
        "revision": revision,
        "roots": list(roots),
        "metadata": {"grantline_digest": bundle.digest},
    }
    files = {path: bundle.files[path] for path in bundle.files}
    files[INDEX_DATA] = _json(index)
    files[MANIFEST] = _json(manifest)
    return OpaBundle(revision, roots, files)


def _roots(bundle: PolicyBundle) -> tuple[str, ...]:
    """The top-level names the bundle owns: each package's first segment, each top-level key
    of its data, and the index. OPA refuses a bundle with data or a package outside them."""
    roots = {INDEX_KEY, *bundle.data}
    for path, source in sorted(bundle.modules.items()):
        package = package_of(source)
        if package is None:
            raise ConfigError(f"{bundle.root / path} declares no package")
        roots.add(package.split(".", 1)[0])
    return tuple(sorted(roots))


def _json(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _entry(path: str, size: int) -> tarfile.TarInfo:
    # The leading slash is how `opa build` names entries; OPA reads both spellings.
    info = tarfile.TarInfo("/" + path)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info
