"""``grantline policy replay``: recorded decisions evaluated again, with the bundle that made
them (kept by digest) or under a proposed policy directory, and what would change."""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from itertools import islice
from pathlib import Path
from typing import Any

import httpx

from grantline.broker.replay import Change, RecordedDecision, Replayed, recorded_decision, replay
from grantline.cli import exit_codes
from grantline.cli.http import add_connection_arguments, broker_client, raise_for, send
from grantline.domain.errors import ConfigError, IntegrityError
from grantline.domain.models import format_time, parse_time
from grantline.policy.bundle import is_policy_path
from grantline.policy.embedded import EmbeddedRegoEngine
from grantline.policy.engine import PolicyEngine, digest_of

_PAGE = 2000
_INPUTS_PER_CALL = 500


def register(policy_commands: Any) -> None:
    parser = policy_commands.add_parser(
        "replay",
        help="evaluate recorded decisions again and list what would change",
        description="Re-evaluates recorded access and approval decisions with the policy bundle "
        "each names (kept by digest in the store), or under a proposed policy directory. "
        "Exit 0 when every decision comes out the same, 1 when some would change or could not "
        "be replayed, 2 when a kept input or bundle does not match its digest.",
    )
    parser.add_argument("--since", help="only decisions recorded at or after this time (RFC 3339)")
    parser.add_argument("--until", help="only decisions recorded before this time (RFC 3339)")
    parser.add_argument(
        "--policies",
        type=Path,
        metavar="DIR",
        help="a proposed policy directory to evaluate them under instead",
    )
    parser.add_argument("--json", type=Path, dest="json_out", help="also write the result as JSON")
    add_connection_arguments(parser)
    parser.set_defaults(run=run_replay)


def run_replay(args: argparse.Namespace) -> int:
    window = {name: _time(getattr(args, name), name) for name in ("since", "until")}
    with ExitStack() as stack:
        client = stack.enter_context(broker_client(args))
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="grantline-")))
        proposed = EmbeddedRegoEngine(args.policies) if args.policies else None
        engines = _Engines(client, workdir, proposed)
        tally = _Tally()
        for chunk in _chunks(_decisions(client, window), _INPUTS_PER_CALL):
            inputs = _inputs(client, [d.input_digest for d in chunk])
            for recorded in chunk:
                tally.add(recorded, inputs.get(recorded.input_digest), engines)
    _print(tally, args.policies)
    if args.json_out:
        args.json_out.write_text(json.dumps(tally.as_json(proposed), indent=2) + "\n")
    return exit_codes.OK if tally.confirmed() else exit_codes.DENIED


class _Engines:
    """An engine per kept bundle, built once; or the proposed one for every decision."""

    def __init__(
        self, client: httpx.Client, workdir: Path, proposed: EmbeddedRegoEngine | None
    ) -> None:
        self._client = client
        self._workdir = workdir
        self._proposed = proposed
        self._built: dict[str, EmbeddedRegoEngine | None] = {}

    def get(self, digest: str) -> PolicyEngine | None:
        """The engine for bundle ``digest``, or None when the broker kept no such bundle."""
        if self._proposed is not None:
            return self._proposed
        if digest not in self._built:
            self._built[digest] = self._build(digest)
        return self._built[digest]

    def _build(self, digest: str) -> EmbeddedRegoEngine | None:
        response = send(self._client, "GET", f"/v1/policy/bundles/{digest}")
        if response.status_code == 404:
            return None
        raise_for(response)
        directory = self._workdir / digest.replace(":", "-")
        try:
            for path, text in _bundle_files(response.json(), digest).items():
                target = directory / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
        except (OSError, ValueError) as exc:
            raise IntegrityError(
                f"the kept policy bundle {digest} cannot be laid out: {exc}"
            ) from exc
        engine = EmbeddedRegoEngine(directory)
        if engine.digest != digest:
            raise IntegrityError(f"the kept policy bundle {digest} hashes to {engine.digest}")
        return engine


def _bundle_files(body: Any, digest: str) -> dict[str, str]:
    """The files of a bundle answer; IntegrityError unless each is a policy file named
    inside the bundle (a store that was altered could name any path)."""
    files = body.get("files") if isinstance(body, dict) else None
    if not isinstance(files, dict) or not all(isinstance(t, str) for t in files.values()):
        raise IntegrityError(f"the kept policy bundle {digest} is malformed")
    for path in files:
        if not is_policy_path(path):
            raise IntegrityError(f"the kept policy bundle {digest} names the file {path!r}")
    return files


class _Tally:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.bundles: set[str] = set()
        self.changes: list[Replayed] = []
        self.unavailable: list[tuple[RecordedDecision, str]] = []

    def add(self, recorded: RecordedDecision, text: str | None, engines: _Engines) -> None:
        if text is None:
            self._miss(recorded, "its input is not kept (past the retention, or never kept)")
            return
        engine = engines.get(recorded.policy_digest)
        if engine is None:
            self._miss(recorded, f"its bundle {recorded.policy_digest} is not kept")
            return
        self.bundles.add(recorded.policy_digest)
        result = replay(recorded, json.loads(text), engine)
        self.counts[result.change] += 1
        if result.change is not Change.SAME:
            self.changes.append(result)

    def _miss(self, recorded: RecordedDecision, why: str) -> None:
        self.counts["unavailable"] += 1
        self.unavailable.append((recorded, why))

    def confirmed(self) -> bool:
        return not self.changes and not self.unavailable

    def as_json(self, proposed: EmbeddedRegoEngine | None) -> dict[str, Any]:
        return {
            "policies": "proposed" if proposed else "recorded",
            "proposed_digest": proposed.digest if proposed else None,
            "replayed": sum(n for k, n in self.counts.items() if k != "unavailable"),
            "counts": {str(change): self.counts[change] for change in Change}
            | {"unavailable": self.counts["unavailable"]},
            # The bundles that made the decisions replayed: with a proposal, those it replaced.
            "recorded_bundles": sorted(self.bundles),
            "changes": [_change_json(r) for r in self.changes],
            "unavailable": [
                {"seq": r.seq, "request_id": r.request_id, "event": r.event, "why": why}
                for r, why in self.unavailable
            ],
        }


def _decisions(
    client: httpx.Client, window: Mapping[str, str | None]
) -> Iterator[RecordedDecision]:
    params = {k: v for k, v in window.items() if v}
    after = 0
    while True:
        response = send(
            client,
            "GET",
            "/v1/records",
            params={**params, "after": after, "limit": _PAGE},
            headers={"Accept": "application/x-ndjson"},
        )
        raise_for(response)
        for line in response.content.splitlines():
            recorded = recorded_decision(json.loads(line))
            if recorded is not None:
                yield recorded
        scanned = int(response.headers["X-Next-After"])
        if scanned <= after:
            return
        after = scanned


def _chunks(decisions: Iterator[RecordedDecision], size: int) -> Iterator[list[RecordedDecision]]:
    while chunk := list(islice(decisions, size)):
        yield chunk


def _inputs(client: httpx.Client, digests: list[str]) -> dict[str, str]:
    """The kept inputs of ``digests``, each checked against its digest (IntegrityError)."""
    wanted = list(dict.fromkeys(digests))
    response = send(client, "POST", "/v1/policy/inputs", json={"digests": wanted})
    raise_for(response)
    body = response.json()
    if body.get("unreadable"):
        raise IntegrityError(f"the kept policy input {body['unreadable'][0]} is unreadable")
    found: dict[str, str] = body["inputs"]
    for digest, text in found.items():
        if digest_of(text.encode("utf-8")) != digest:
            raise IntegrityError(f"the kept policy input {digest} does not match its digest")
    return found


def _time(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    try:
        return format_time(parse_time(value))
    except ValueError as exc:
        raise ConfigError(f"--{name} is not an RFC 3339 time: {value!r}") from exc


def _print(tally: _Tally, proposed: Path | None) -> None:
    for result in tally.changes:
        print(_change_line(result))
    for recorded, why in tally.unavailable[:20]:
        print(
            f"not replayed  seq {recorded.seq}  {recorded.event}  "
            f"{_shown(recorded.request_id)}: {why}"
        )
    if len(tally.unavailable) > 20:
        print(f"... and {len(tally.unavailable) - 20} more not replayed")
    counts = tally.counts
    bundles = f"the {len(tally.bundles)} bundle(s) that made them"
    under = f"under {proposed}" if proposed else f"with {bundles}"
    print(
        f"replayed {sum(counts[c] for c in Change)} decisions {under}: "
        f"{counts[Change.SAME]} same, {counts[Change.NEWLY_DENIED]} newly denied, "
        f"{counts[Change.NEWLY_ALLOWED]} newly allowed, {counts[Change.CHANGED]} changed; "
        f"{counts['unavailable']} could not be replayed"
    )


def _change_line(result: Replayed) -> str:
    recorded = result.recorded
    who = f"{result.subject} {result.role} on {result.target}".strip()
    return (
        f"{result.change.replace('_', ' ')}  seq {recorded.seq}  {recorded.at}  {recorded.event}  "
        f"{_shown(recorded.request_id)}  {_shown(who)}\n"
        f"    was: {_verdict(recorded.evidence)}\n    now: {_verdict(result.evidence)}"
        + (f"\n    differs in: {', '.join(result.differs)}" if result.differs else "")
    )


def _verdict(evidence: Mapping[str, Any]) -> str:
    word = "allow" if evidence.get("allow") is True else "deny"
    if evidence.get("require_approval") is True:
        word += " once approved"
    rule = evidence.get("rule")
    reasons = evidence.get("reasons") or []
    text = f"{word} ({rule})" if rule and rule != word else word
    return f"{text}: {_shown('; '.join(map(str, reasons)))}" if reasons else _shown(text)


def _shown(text: str) -> str:
    """``text`` safe for a terminal: recorded strings come from callers, and a control
    character or escape sequence in one must not rewrite what the reader sees."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def _change_json(result: Replayed) -> dict[str, Any]:
    recorded = result.recorded
    return {
        "change": str(result.change),
        "seq": recorded.seq,
        "request_id": recorded.request_id,
        "event": recorded.event,
        "at": recorded.at,
        "subject": result.subject,
        "role": result.role,
        "target": result.target,
        "differs": list(result.differs),
        "before": dict(recorded.evidence),
        "after": dict(result.evidence),
    }
