"""The policy workflow of a platform team: ``policy check``, ``eval``, ``test`` (also against an
OPA server), ``bundle``; each policy load of a served broker recorded as ``policy_activated``
with its bundle kept; and the GitHub Actions example calling only commands that exist."""

from __future__ import annotations

import json
import shlex
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import yaml
from tests.conftest import POLICIES, REPO, Served, cli, export, serve, verify
from tests.unit.policy.opa_double import OPA_URL, OpaDouble

from grantline.cli.main import build_parser, main
from grantline.policy import PolicyBundle

pytestmark = pytest.mark.e2e

CI = "spiffe://example.org/ci-runner"
ALICE, SAM, AUDITOR = "user:alice", "user:sam", "user:auditor"
WORKFLOW = REPO / "deploy" / "github-actions" / "policy.yml"


def access_input(role: str = "db-read", ttl: int = 600, subject: str = CI) -> dict[str, Any]:
    return {
        "identity": {"subject": subject, "issuer": "https://issuer.test", "claims": {}},
        "request": {
            "target": "s3://reports" if role.startswith("report") else "postgres://orders-db",
            "role": role,
            "ttl_seconds": ttl,
            "credential_type": "jwt",
            "purpose": "eval",
            "ticket": "",
            "agent": {},
        },
        "active_grants": [],
        "now": "2026-11-23T10:00:00.000Z",
    }


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    return Path(shutil.copytree(POLICIES, tmp_path / "policies"))


# -- policy check -----------------------------------------------------------------------------


def test_check_passes_the_shipped_policy(capsys: pytest.CaptureFixture[str]) -> None:
    code, output = run(capsys, "policy", "check", str(POLICIES))

    assert code == 0, output
    assert "compiles, no unreplayable built-ins" in output


def test_check_reports_each_unreplayable_builtin_at_its_line(
    policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (policies / "clock.rego").write_text(
        "package grantline.extra\n\n"
        "import rego.v1\n\n"
        "# time.now_ns() in a comment is fine\n"
        "stamp := time.now_ns()\n\n"
        'fetched := http.send({"method": "GET", "url": "https://example.org"})\n'
    )

    code, output = run(capsys, "policy", "check", str(policies))

    assert code == 1, output
    assert f"{policies / 'clock.rego'}:6: time.now_ns reads the clock" in output
    assert f"{policies / 'clock.rego'}:8: http.send calls out over the network" in output
    assert "clock.rego:5" not in output


def test_check_reports_a_policy_that_does_not_compile(
    policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (policies / "grantline.rego").write_text("package grantline\n\nallow if {\n")

    code, output = run(capsys, "policy", "check", str(policies))

    assert code == 1
    assert "does not compile" in output


# -- policy eval ------------------------------------------------------------------------------


def eval_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], document: Any, *flags: str
) -> tuple[int, dict[str, Any]]:
    path = tmp_path / f"input-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(document))
    code, output = run(capsys, "policy", "eval", "--input", str(path), *flags, str(POLICIES))
    return code, json.loads(output)


def test_eval_prints_what_the_broker_would_decide(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, allowed = eval_input(tmp_path, capsys, access_input())
    assert code == 0
    assert allowed["status"] == "issued"
    assert allowed["decision"]["rule"] == "rbac"
    assert allowed["decision"]["policy_digest"] == PolicyBundle.load(POLICIES).digest

    code, denied = eval_input(tmp_path, capsys, access_input(ttl=7200))
    assert code == 1
    assert denied["status"] == "denied"
    assert denied["decision"]["reasons"] == ["ttl_seconds 7200 exceeds the cap of 3600 for db-read"]

    code, pending = eval_input(tmp_path, capsys, access_input("report-write", subject=ALICE))
    assert code == 0
    assert pending["status"] == "pending_approval"
    assert pending["approval"]["all_of"][0]["group"] == "security"


def test_eval_routes_as_the_broker_does(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    glass = access_input()
    glass["request"].update(break_glass=True, justification="outage")

    code, answer = eval_input(tmp_path, capsys, glass)

    # db-read has no break-glass block: the policy denies, and so would the broker.
    assert code == 1
    assert answer["status"] == "denied"


def test_eval_of_the_approval_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    approval = {
        "approver": {"subject": SAM, "issuer": "i", "claims": {}},
        "approver_active_grants": [],
        "request": {
            "request_id": "r1",
            "subject": ALICE,
            "requested_by": ALICE,
            "actors": [],
            "role": "report-write",
            "target": "s3://reports",
            "ttl_seconds": 600,
            "credential_type": "jwt",
        },
        "approval": {"all_of": [{"group": "security", "count": 1, "members": [SAM]}]},
        "now": "2026-11-23T10:05:00.000Z",
    }

    code, answer = eval_input(tmp_path, capsys, approval, "--approval")
    assert code == 0
    assert answer["groups"] == ["security"]

    approval["approver"]["subject"] = ALICE
    code, answer = eval_input(tmp_path, capsys, approval, "--approval")
    assert code == 1
    assert any("nobody approves their own request" in r for r in answer["decision"]["reasons"])


def test_eval_refuses_an_input_that_is_not_an_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "list.json"
    path.write_text("[]")

    code, output = run(capsys, "policy", "eval", "--input", str(path), str(POLICIES))

    assert code == 4
    assert "must be a JSON object" in output


# -- policy test, against an OPA server too -----------------------------------------------------


@pytest.fixture
def opa(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpaDouble]:
    with respx.mock(assert_all_called=False) as router:
        double = OpaDouble(POLICIES)
        double.install(router)
        monkeypatch.setenv("GRANTLINE_OPA_URL", OPA_URL)
        yield double


def test_policy_test_runs_the_cases_on_the_embedded_engine_and_on_opa(
    opa: OpaDouble, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = run(capsys, "policy", "test", str(POLICIES))

    assert code == 0, output
    embedded, _, through_opa = output.partition(f"engine: OPA server at {OPA_URL}")
    assert embedded.startswith("engine: embedded (rego-cpp)")
    assert " 0 failed" in embedded and " 0 failed" in through_opa
    assert opa.inputs  # the cases reached OPA
    assert "note: OPA decides under" not in output


def test_policy_test_fails_when_opa_answers_otherwise(
    opa: OpaDouble, capsys: pytest.CaptureFixture[str]
) -> None:
    opa.revision = "some-other-revision"
    deny = {"allow": False, "reasons": ["OPA says no"]}

    def no_to_everything(path: str, data: Any) -> httpx.Response | None:
        body = {"result": deny, "provenance": opa.provenance()}
        return httpx.Response(200, json=body) if path == "decision" else None

    opa.override = no_to_everything

    code, output = run(capsys, "policy", "test", str(POLICIES))

    assert code == 1
    assert "FAIL" in output.partition("engine: OPA server")[2]
    assert "note: OPA decides under" in output


def test_policy_test_without_opa_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    code, output = run(capsys, "policy", "test", str(POLICIES))

    assert code == 0
    assert "engine: embedded" in output
    assert "OPA" not in output


# -- policy_activated records in a served broker ------------------------------------------------


@pytest.fixture
def served(policies: Path, tmp_path: Path, redis_url: str) -> Iterator[Served]:
    broker = serve(
        tmp_path / "home",
        redis_url=redis_url,
        policies=policies,
        extra_env={"GRANTLINE_POLICY_RELOAD_SECONDS": "0.2"},
    )
    yield broker
    broker.stop()


def activations(served: Served) -> list[dict[str, Any]]:
    with served.client(AUDITOR) as client:
        response = client.get(
            "/v1/records",
            params={"event": "policy_activated", "limit": 100},
            headers={"Accept": "application/x-ndjson"},
        )
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.content.splitlines()]


def wait_for_activations(served: Served, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while len(found := activations(served)) < count:
        assert time.monotonic() < deadline, f"{len(found)} activations, {count} expected"
        time.sleep(0.2)
    return found


def test_each_policy_load_is_recorded_with_its_bundle_and_what_decided_before(
    served: Served, policies: Path, tmp_path: Path, redis_url: str
) -> None:
    first_bundle = PolicyBundle.load(policies)
    (started,) = activations(served)
    assert started["request_id"] == ""
    data = started["data"]
    assert data["policy_digest"] == first_bundle.digest
    assert data["previous"] is None
    assert data["trigger"]["kind"] == "startup"
    assert {"host", "pid"} <= data["trigger"].keys()
    assert data["files"] == {p: f"sha256:{h}" for p, h in first_bundle.file_digests.items()}
    with served.client(AUDITOR) as client:
        kept = client.get(f"/v1/policy/bundles/{first_bundle.digest}")
    assert kept.status_code == 200  # kept with the activation, before any decision named it
    assert kept.json()["files"]["data.json"] == (policies / "data.json").read_text()

    with served.client(CI) as client:
        body = {"target": "postgres://orders-db", "role": "db-write", "ttl_seconds": 1200}
        assert client.post("/v1/access-requests", json=body).status_code == 403
    document = json.loads((policies / "data.json").read_text())
    document["grantline"]["roles"]["db-write"]["max_ttl_seconds"] = 1800
    (policies / "data.json").write_text(json.dumps(document, indent=2))

    _, reloaded = wait_for_activations(served, 2)
    second = PolicyBundle.load(policies).digest
    assert reloaded["data"]["policy_digest"] == second
    assert reloaded["data"]["previous"] == first_bundle.digest
    assert reloaded["data"]["trigger"]["kind"] == "reload"
    with served.client(CI) as client:
        assert client.post("/v1/access-requests", json=body).status_code == 201

    env = {**served.env, "GRANTLINE_TOKEN": served.token(AUDITOR)}
    replayed = cli(env, "policy", "replay", check=False)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "2 same" in replayed.stdout
    exported = tmp_path / "export.jsonl"
    export(served, exported)
    code, output = verify(served, exported)
    assert code == 0, output

    served.stop()
    again = serve(served.home, redis_url=redis_url, policies=policies)
    try:
        restarted = activations(again)[-1]
        assert restarted["data"]["trigger"]["kind"] == "startup"
        assert restarted["data"]["previous"] == second
    finally:
        again.stop()


def test_a_refused_change_is_not_recorded(served: Served, policies: Path) -> None:
    (policies / "grantline.rego").write_text("package grantline\n\nallow if {\n")
    time.sleep(1.0)

    assert len(activations(served)) == 1


# -- the GitHub Actions example ---------------------------------------------------------------


def grantline_commands(script: str) -> list[list[str]]:
    """Each ``grantline ...`` command line of a step's script, as argv, shell variables
    standing in for their values and redirections left out."""
    commands = []
    for line in script.replace("\\\n", " ").splitlines():
        words = shlex.split(line.strip(), comments=True) if "grantline " in line else []
        if "grantline" not in words:
            continue
        argv = words[words.index("grantline") + 1 :]
        redirected = [i for i, w in enumerate(argv) if w.startswith((">", "2>"))]
        argv = argv[: redirected[0]] if redirected else argv
        commands.append(["2026-01-01T00:00:00Z" if "$since" in w else w for w in argv])
    return commands


def test_the_workflow_runs_on_policy_changes_and_calls_only_commands_that_exist() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 reads the key `on` as true.
    triggers = workflow.get("on", workflow.get(True))
    assert triggers["pull_request"]["paths"] == ["policies/**"]
    steps = workflow["jobs"]["policy"]["steps"]
    commands = [argv for step in steps for argv in grantline_commands(step.get("run", ""))]

    assert [argv[:2] for argv in commands] == [
        ["policy", "check"],
        ["policy", "bundle"],
        ["policy", "test"],
        ["policy", "replay"],
    ]
    parser = build_parser()
    for argv in commands:
        parser.parse_args(argv)  # exits (SystemExit) on anything our CLI does not accept
    replay = next(argv for argv in commands if argv[1] == "replay")
    assert "--policies" in replay and "--since" in replay
    uploads = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert uploads and uploads[0]["with"]["path"] == "policy-bundle.tar.gz"
    secrets = json.dumps(steps)
    assert "secrets.GRANTLINE_URL" in secrets and "secrets.GRANTLINE_AUDITOR_TOKEN" in secrets
