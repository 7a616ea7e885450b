"""``grantline audit export`` with filters: an evidence bundle (evidence/bundle.py).

The bundle is tied to one checkpoint, taken when it starts: records appended later are not
in it. Written to ``OUT.partial`` and renamed when complete; ``--resume`` goes on from the
last record of a partial bundle, against the same checkpoint, so that an interrupted export
of a large selection loses nothing already written.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from grantline.cli.http import error_message, send
from grantline.domain.errors import ConfigError, DependencyUnavailableError
from grantline.evidence.bundle import entry, header, is_bundle, trailer

FILTERS = ("since", "until", "subject", "role", "target", "request_id", "event")
_PAGE = 2000
_PROOFS = 500


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", help="records at or after this RFC 3339 time")
    parser.add_argument("--until", help="records before this RFC 3339 time")
    parser.add_argument("--subject", help="records of requests for this subject")
    parser.add_argument("--role", help="records of requests for this role")
    parser.add_argument("--target", help="records of requests for this target")
    parser.add_argument("--request-id", dest="request_id", help="the records of one request")
    parser.add_argument("--event", help="records of this event kind (issued, revoked, ...)")
    parser.add_argument(
        "--resume", action="store_true", help="go on with OUT.partial left by an interrupted export"
    )


def selection_of(args: argparse.Namespace) -> dict[str, str]:
    return {name: getattr(args, name) for name in FILTERS if getattr(args, name)}


def export_bundle(client: httpx.Client, args: argparse.Namespace) -> tuple[int, int]:
    """Write the bundle; the number of records in it and the checkpoint's tree size."""
    selection = selection_of(args)
    partial = args.out.with_name(args.out.name + ".partial")
    if args.resume and partial.exists():
        note, after, count, digests = _resume_point(partial)
        mode = "ab"
    else:
        note, after, count, digests = _get(client, "/v1/checkpoint").text, 0, 0, set()
        mode = "wb"
    size = int(note.split("\n", 2)[1])
    with partial.open(mode) as out:
        if mode == "wb":
            jwks = {
                "keys": [
                    k
                    for k in _get(client, "/.well-known/jwks.json").json()["keys"]
                    if k.get("grantline_purpose") == "log"
                ]
            }
            out.write(header(note.split("\n", 1)[0], selection, note, jwks) + b"\n")
        for seq, proof, line, body in _selected(client, selection, after, size):
            out.write(entry(seq, proof, line) + b"\n")
            out.flush()
            count += 1
            digests.update(_policy_digest(body))
            _progress(seq, size)
        out.write(trailer(count, digests) + b"\n")
    if sys.stderr.isatty():
        print(file=sys.stderr)
    partial.replace(args.out)
    return count, size


def _selected(
    client: httpx.Client, selection: dict[str, str], after: int, size: int
) -> Iterator[tuple[int, list[str], bytes, dict[str, Any]]]:
    """Each selected record up to ``size``: its seq, proof, exact line and parsed body."""
    while after < size:
        response = _get(
            client,
            "/v1/records",
            params={"after": after, "limit": min(_PAGE, size - after), **selection},
            headers={"Accept": "application/x-ndjson"},
        )
        next_after = int(response.headers["X-Next-After"])
        parsed = [(json.loads(line), line) for line in response.content.splitlines() if line]
        rows = [(body, line) for body, line in parsed if body["seq"] <= size]
        for start in range(0, len(rows), _PROOFS):
            batch = rows[start : start + _PROOFS]
            seqs = ",".join(str(body["seq"]) for body, _ in batch)
            proofs = _get(
                client, "/v1/records/proofs", params={"tree_size": size, "seqs": seqs}
            ).json()["proofs"]
            for body, line in batch:
                yield body["seq"], proofs[str(body["seq"])], line, body
        if next_after <= after:
            break
        after = next_after


def _resume_point(partial: Path) -> tuple[str, int, int, set[str]]:
    """The checkpoint, last seq, count and digests of a partial bundle."""
    note, after, count, digests = "", 0, 0, set()
    with partial.open("rb") as handle:
        first = handle.readline()
        if not is_bundle(first):
            raise ConfigError(f"{partial} is not a partial bundle")
        note = json.loads(first)["checkpoint"]
        for raw in handle:
            try:
                body = json.loads(raw)
            except ValueError:
                break  # a line cut by the interruption: written again
            after, count = body["seq"], count + 1
            digests.update(_policy_digest(json.loads(body["line"])))
    # Drop a cut last line, if any, so the file ends on a whole entry.
    _truncate_after_whole_lines(partial)
    return note, after, count, digests


def _truncate_after_whole_lines(path: Path) -> None:
    data = path.read_bytes()
    whole = data[: data.rfind(b"\n") + 1]
    last = whole.splitlines()[-1] if whole.strip() else b""
    try:
        json.loads(last)
    except ValueError:
        whole = whole[: whole.rfind(b"\n", 0, len(whole) - 1) + 1]
    if whole != data:
        path.write_bytes(whole)


def _policy_digest(body: dict[str, Any]) -> set[str]:
    digest = body.get("data", {}).get("policy_digest") if body.get("event") == "evaluated" else None
    return {digest} if isinstance(digest, str) else set()


def _progress(seq: int, size: int) -> None:
    if sys.stderr.isatty():
        print(f"\rexporting: record {seq:,} of {size:,}", end="", file=sys.stderr)


def _get(client: httpx.Client, path: str, **kwargs: Any) -> httpx.Response:
    response = send(client, "GET", path, **kwargs)
    if response.status_code != 200:
        raise DependencyUnavailableError(
            f"{path}: HTTP {response.status_code}: {error_message(response)}"
        )
    return response
