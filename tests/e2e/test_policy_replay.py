"""``grantline policy replay`` end to end: a served broker decides, keeps each input and bundle
by digest, and the replay confirms every recorded decision, or lists what a proposed policy
would change.

The shipped policy (policies/data.json): the ci-runner holds db-read (cap 3600 s) and
db-write (cap 900 s); deployer belongs to the release-bot only; report-write needs one of
security (sam, sofia); bob is in platform-oncall, not security.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from tests.conftest import POLICIES, Served, cli, export, serve

from grantline.store import keys
from grantline.store.policy_archive import pack

pytestmark = pytest.mark.e2e

CI = "spiffe://example.org/ci-runner"
BOT = "spiffe://example.org/release-bot"
ALICE, SAM, BOB, DAN = "user:alice", "user:sam", "user:bob", "user:dan"
AUDITOR = "user:auditor"
DECISION_EVENTS = {"evaluated", "approval_given", "approval_refused", "rejected"}


@pytest.fixture
def served(tmp_path: Path, redis_url: str) -> Iterator[Served]:
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    broker = serve(
        tmp_path / "home",
        redis_url=redis_url,
        policies=policies,
        extra_env={"GRANTLINE_POLICY_RELOAD_SECONDS": "0.2"},
    )
    yield broker
    broker.stop()


def ask(served: Served, subject: str, role: str, target: str, ttl: int) -> httpx.Response:
    body = {"target": target, "role": role, "ttl_seconds": ttl, "purpose": "replay test"}
    with served.client(subject) as client:
        return client.post("/v1/access-requests", json=body)


def replay(served: Served, tmp_path: Path, *extra: str) -> tuple[int, str, dict[str, Any]]:
    out = tmp_path / f"replay-{time.monotonic_ns()}.json"
    env = {**served.env, "GRANTLINE_TOKEN": served.token(AUDITOR)}
    result = cli(env, "policy", "replay", "--json", str(out), *extra, check=False)
    report = json.loads(out.read_text()) if out.exists() else {}
    return result.returncode, result.stdout + result.stderr, report


def decisions_in_log(served: Served, tmp_path: Path) -> list[dict[str, Any]]:
    lines = export(served, tmp_path / f"export-{time.monotonic_ns()}.jsonl")
    records = [json.loads(line) for line in lines]
    return [r for r in records if r["event"] in DECISION_EVENTS]


def flows(served: Served) -> dict[str, str]:
    """One request of each kind; the request id of each by name."""
    ids = {}
    for name, (subject, role, target, ttl, status) in {
        "read": (CI, "db-read", "postgres://orders-db", 600, 201),
        "write_too_long": (CI, "db-write", "postgres://orders-db", 1200, 403),
        "deploy_unbound": (CI, "deployer", "k8s://prod", 600, 403),
        "deploy": (BOT, "deployer", "k8s://prod", 600, 201),
        "sod": (BOT, "prod-approver", "k8s://prod", 600, 403),
        "report": (ALICE, "report-write", "s3://reports", 900, 202),
        "admin": (ALICE, "db-admin", "postgres://orders-db", 600, 202),
    }.items():
        response = ask(served, subject, role, target, ttl)
        assert response.status_code == status, (name, response.text)
        ids[name] = response.json()["request_id"]
    # dan is platform-oncall but bound to deployer, in conflict with db-admin: the approval
    # policy refuses him, and the refusal is recorded.
    with served.client(DAN) as client:
        refused = client.post(f"/v1/access-requests/{ids['admin']}/approve", json={"reason": "x"})
    assert refused.status_code == 403, refused.text
    with served.client(BOB) as client:
        counted = client.post(f"/v1/access-requests/{ids['admin']}/approve", json={"reason": "y"})
    assert counted.status_code == 200, counted.text
    with served.client(SAM) as client:
        approved = client.post(
            f"/v1/access-requests/{ids['report']}/approve", json={"reason": "ok"}
        )
    assert approved.status_code == 200, approved.text
    return ids


def test_every_recorded_decision_replays_the_same_with_its_bundle(
    served: Served, tmp_path: Path
) -> None:
    flows(served)
    code, output, report = replay(served, tmp_path)
    assert code == 0, output
    decisions = decisions_in_log(served, tmp_path)
    # Each of the 7 requests has one access decision, the approved one a second at quorum;
    # dan's refusal and sam's and bob's approvals are approval decisions.
    assert len(decisions) == 11
    assert report["replayed"] == len(decisions)
    assert report["counts"]["same"] == len(decisions)
    assert report["counts"]["unavailable"] == 0
    named = {
        d["data"].get("policy_digest") or d["data"]["decision"]["policy_digest"] for d in decisions
    }
    assert report["recorded_bundles"] == sorted(named)
    assert f"{len(decisions)} same" in output


def test_decisions_made_before_a_policy_change_replay_with_the_bundle_they_name(
    served: Served, tmp_path: Path
) -> None:
    before = ask(served, CI, "db-write", "postgres://orders-db", 1200)
    assert before.status_code == 403
    data_file = _served_policies(served) / "data.json"
    data = json.loads(data_file.read_text())
    data["grantline"]["roles"]["db-write"]["max_ttl_seconds"] = 1800
    data_file.write_text(json.dumps(data, indent=2))
    deadline = time.monotonic() + 15
    while (after := ask(served, CI, "db-write", "postgres://orders-db", 1200)).status_code != 201:
        assert time.monotonic() < deadline, "the broker did not reload the changed policy"
        time.sleep(0.2)
    code, output, report = replay(served, tmp_path)
    assert code == 0, output
    assert len(report["recorded_bundles"]) == 2
    assert report["counts"]["same"] == report["replayed"] >= 2
    assert after.json()["decision"]["policy_digest"] in report["recorded_bundles"]


def test_a_proposed_policy_lists_what_would_change(served: Served, tmp_path: Path) -> None:
    ids = flows(served)
    proposed = tmp_path / "proposed"
    shutil.copytree(POLICIES, proposed)
    data_file = proposed / "data.json"
    data = json.loads(data_file.read_text())
    bindings = data["grantline"]["bindings"]
    ci = next(b for b in bindings if b["subject"] == CI)
    ci["roles"] = [r for r in ci["roles"] if r != "db-read"] + ["deployer"]
    # bob moves from platform-oncall to security: his approval would count for another group.
    groups = data["grantline"]["groups"]
    groups["platform-oncall"].remove(BOB)
    groups["security"].append(BOB)
    data_file.write_text(json.dumps(data, indent=2))

    code, output, report = replay(served, tmp_path, "--policies", str(proposed))

    assert code == 1, output
    by_change: dict[str, set[str]] = {}
    for change in report["changes"]:
        by_change.setdefault(change["change"], set()).add(change["request_id"])
    assert by_change.get("newly_denied") == {ids["read"]}
    assert by_change.get("newly_allowed") == {ids["deploy_unbound"]}
    # Both requests that wait for approvers list them in their decisions, which now name
    # other members; and bob's approval counts for security now.
    assert by_change.get("changed") == {ids["admin"], ids["report"]}
    changed = [c for c in report["changes"] if c["change"] == "changed"]
    bob = next(c for c in changed if c["event"] == "approval_given")
    assert bob["request_id"] == ids["admin"] and bob["differs"] == ["groups"]
    assert (bob["before"]["groups"], bob["after"]["groups"]) == (["platform-oncall"], ["security"])
    # report: the request's decision and the one made again at quorum; admin: its decision.
    decisions = [c for c in changed if c["event"] == "evaluated"]
    assert len(decisions) == 3 and all(c["differs"] == ["approval"] for c in decisions)
    assert report["counts"]["newly_denied"] == report["counts"]["newly_allowed"] == 1
    assert report["counts"]["same"] == report["replayed"] - 6
    assert "newly denied  seq" in output and ids["read"] in output
    assert "now: deny" in output


def test_a_kept_input_that_does_not_match_its_digest_is_an_integrity_failure(
    served: Served, tmp_path: Path, redis_url: str
) -> None:
    ask(served, CI, "db-read", "postgres://orders-db", 600)
    store = redis.Redis.from_url(redis_url)
    kept = store.keys(keys.policy_input("*"))
    assert len(kept) == 1
    assert 0 < store.pttl(kept[0]) <= 400 * 86400 * 1000
    # Another decision's input, stored under this one's digest.
    store.set(kept[0], pack(b'{"identity":{"subject":"user:mallory"}}'))
    code, output, _ = replay(served, tmp_path)
    assert code == 2, output
    assert "does not match its digest" in output
    # A value that does not even unpack.
    store.set(kept[0], "garbage!")
    code, output, _ = replay(served, tmp_path)
    assert code == 2, output
    assert "unreadable" in output


def test_decisions_whose_input_is_no_longer_kept_are_reported_not_confirmed(
    served: Served, tmp_path: Path, redis_url: str
) -> None:
    ask(served, CI, "db-read", "postgres://orders-db", 600)
    store = redis.Redis.from_url(redis_url)
    store.delete(*store.keys(keys.policy_input("*")))
    code, output, report = replay(served, tmp_path)
    assert code == 1, output
    assert report["counts"]["unavailable"] == 1
    assert "its input is not kept" in output


def test_only_auditors_read_kept_inputs_and_bundles(served: Served, tmp_path: Path) -> None:
    response = ask(served, CI, "db-read", "postgres://orders-db", 600)
    digest = response.json()["decision"]["policy_digest"]
    with served.client(CI) as client:
        assert client.get(f"/v1/policy/bundles/{digest}").status_code == 403
        assert client.post("/v1/policy/inputs", json={"digests": [digest]}).status_code == 403
    with served.client(AUDITOR) as client:
        files = client.get(f"/v1/policy/bundles/{digest}").json()["files"]
        assert "data.json" in files and any(path.endswith(".rego") for path in files)
        missing = client.get(f"/v1/policy/bundles/sha256:{'0' * 64}")
        assert missing.status_code == 404
        bad = client.post("/v1/policy/inputs", json={"digests": ["md5:abc"]})
        assert bad.status_code == 422
        assert "digest" in bad.json()["error"]["message"]
    code, output, _ = replay(served, tmp_path)
    assert code == 0, output
    env = {**served.env, "GRANTLINE_TOKEN": served.token(CI)}
    refused = cli(env, "policy", "replay", check=False)
    assert refused.returncode != 0
    assert "only auditors" in refused.stderr


def _served_policies(served: Served) -> Path:
    return served.home.parent / "policies"
