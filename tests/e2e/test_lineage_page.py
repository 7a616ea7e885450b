"""The lineage page end to end: a served broker, a request driven through approval, issuance,
collection and revocation, and the page opened in Debian's headless Chromium (Playwright),
logged in through its form, its timeline and the browser's own verification read from the
DOM. Also the page's JavaScript checks against the worked example of docs/evidence-format.md
and against Grantline's Python Merkle tree and notes, and the pages' auth, headers and
escaping over plain HTTP.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from tests.conftest import REPO, Served, serve

from grantline.api.ui import pages
from grantline.api.ui.display import FORMATS, text_of
from grantline.api.ui.timeline import (
    FIRST_ROWS,
    LAST_ROWS,
    Checkpoint,
    flatten,
    lineage_page,
    row_of,
)
from grantline.evidence.merkle import inclusion_proof, leaf_hash, root_of
from grantline.evidence.note import NoteKey, checkpoint_text, sign_note
from grantline.evidence.record import GENESIS, RECORD_DOMAIN, chain_hash, seal
from grantline.evidence.signer import LocalEd25519Signer

pytestmark = pytest.mark.e2e

ALICE, SAM, AUDITOR = "user:alice", "user:sam", "user:auditor"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# As served: display.js with the display tables written in.
DISPLAY_JS = pages.static_bytes("display.js").decode()
LINEAGE_JS = pages.static_bytes("lineage.js").decode()
ARTIFACTS = REPO / "artifacts"
HOSTILE = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
FLOW_EVENTS = [
    "requested",
    "evaluated",
    "approval_given",
    "evaluated",
    "approved",
    "issued",
    "collected",
    "revoked",
]
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
# The worked example of docs/evidence-format.md section 11.
EXAMPLE_JWKS = {
    "keys": [
        {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
            "kid": "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k",
            "alg": "EdDSA",
            "use": "sig",
        }
    ]
}
EXAMPLE_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
EXAMPLE_CHAIN_HASH = "sha256:a6041bf1aa2523eb13f33aff56bf7ba6fc3c2eda7c9fbcafa7797598c7d2af5b"


def example_line() -> bytes:
    text = (REPO / "docs" / "evidence-format.md").read_text()
    block = text.split("<!-- example:export -->", 1)[1].split("```", 2)[1]
    return block.strip().splitlines()[0].encode()


# -- the served broker and one request through its whole life -------------------------------


class Flow:
    def __init__(self, served: Served) -> None:
        self.served = served
        self.request_id = ""
        self.denied_id = ""
        self.hostile_id = ""


def post(served: Served, subject: str, path: str, body: dict[str, Any]) -> httpx.Response:
    with served.client(subject) as client:
        response = client.post(path, json=body)
    assert response.status_code < 300 or response.status_code == 403, response.text
    return response


def ask(served: Served, **overrides: Any) -> str:
    body = {
        "target": "s3://reports",
        "role": "report-write",
        "ttl_seconds": 900,
        "purpose": "quarterly restatement",
        "ticket": "CHG-77",
        **overrides,
    }
    request_id: str = post(served, ALICE, "/v1/access-requests", body).json()["request_id"]
    return request_id


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    served = serve(tmp_path_factory.mktemp("lineage") / "home")
    try:
        flow = Flow(served)
        flow.request_id = ask(served)
        rid = flow.request_id
        post(served, SAM, f"/v1/access-requests/{rid}/approve", {"reason": "restatement CHG-77"})
        with served.client(ALICE) as client:
            assert client.get(f"/v1/access-requests/{rid}/credential").status_code == 200
        post(served, ALICE, f"/v1/access-requests/{rid}/revoke", {"reason": "job done"})
        flow.denied_id = ask(served, ttl_seconds=3600)
        flow.hostile_id = ask(served, purpose=HOSTILE, ticket="</dd><b>x</b>")
        yield flow
    finally:
        served.stop()


def auditor(flow: Flow) -> httpx.Client:
    return flow.served.client(AUDITOR)


def anonymous(flow: Flow) -> httpx.Client:
    return httpx.Client(base_url=flow.served.url, timeout=10, follow_redirects=False)


# -- the browser ----------------------------------------------------------------------------


def chromium_path() -> str:
    """Debian's chromium; without it the browser tests skip, unless they are required."""
    if CHROMIUM.exists():
        return str(CHROMIUM)
    reason = "Debian's chromium is not installed (apt-get install chromium)"
    if os.environ.get("GRANTLINE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason}, and GRANTLINE_REQUIRE_BROWSER=1 requires the browser tests")
    pytest.skip(f"{reason}; set GRANTLINE_REQUIRE_BROWSER=1 to fail instead")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 — only with a browser

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    yield opened
    context.close()


def log_in(page: Any, flow: Flow, path: str, subject: str = AUDITOR) -> None:
    """Open ``path``, get sent to the login form, paste the token and come back."""
    page.goto(flow.served.url + path)
    assert page.url.startswith(flow.served.url + "/ui/login?next=")
    page.fill("textarea[name=token]", flow.served.token(subject))
    page.click("form[action='/ui/login'] button[type=submit]")
    page.wait_for_load_state()


def wait_checked(page: Any) -> None:
    """Until the page's script has checked everything (no eval: the page's CSP forbids it)."""
    page.wait_for_selector("#evidence:not([data-state=pending])", state="attached")


def rows(page: Any) -> list[dict[str, Any]]:
    """Each record row as the DOM shows it."""
    result: list[dict[str, Any]] = page.eval_on_selector_all(
        "li[data-record]",
        """rows => rows.map(row => {
            const facts = kind => Object.fromEntries(
                [...row.querySelectorAll(`dl.${kind} dt`)]
                    .map(dt => [dt.textContent, dt.nextElementSibling.textContent]));
            return {
                seq: Number(row.dataset.seq), event: row.dataset.event,
                signature: row.dataset.signature, inclusion: row.dataset.inclusion,
                chain: row.dataset.chain, facts: row.dataset.facts,
                details: row.querySelector("details").dataset.source,
                who: facts("who"), what: facts("what"),
                outcome: row.querySelector(".outcome")?.textContent ?? null,
                reasons: [...row.querySelectorAll(".reasons li")].map(li => li.textContent),
                decision: facts("decision-facts"),
                badges: [...row.querySelectorAll(".badge")].map(b => b.textContent),
            };
        })""",
    )
    return result


# -- the page in the browser ----------------------------------------------------------------


def test_the_lineage_page_shows_the_timeline_and_the_browser_verifies_every_record(
    flow: Flow, page: Any
) -> None:
    log_in(page, flow, f"/ui/requests/{flow.request_id}")
    assert page.url == f"{flow.served.url}/ui/requests/{flow.request_id}"
    wait_checked(page)
    shown = rows(page)

    assert [row["event"] for row in shown] == FLOW_EVENTS
    # Consecutive: the request's records were appended one after another (the log opens
    # with the broker's policy_activated record, so they need not start at 1).
    first = shown[0]["seq"]
    assert [row["seq"] for row in shown] == list(range(first, first + 8))
    requested, evaluated, given, _, approved, issued, collected, revoked = shown
    assert requested["who"]["for"] == ALICE
    assert requested["what"] == {
        "target": "s3://reports",
        "role": "report-write",
        "TTL": "900 s",
        "credential type": "jwt",
        "purpose": "quarterly restatement",
        "ticket": "CHG-77",
    }
    assert evaluated["who"] == {"by": "policy"}
    assert evaluated["outcome"] == "allowed"
    assert evaluated["decision"]["approval required"] == "yes"
    assert evaluated["decision"]["policy"].startswith("sha256:")
    assert given["who"]["approver"] == SAM
    assert given["what"]["reason"] == "restatement CHG-77"
    assert approved["who"] == {"by": "approvers", "approvers": f"security: {SAM}"}
    assert approved["what"]["requirement"] == "1 of security"
    assert issued["what"]["fingerprint"].startswith("sha256:")
    assert issued["what"]["handle"].startswith("jti: ")
    assert collected["who"] == {"by": ALICE}
    assert revoked["who"] == {"by": ALICE, "source": "api"}
    assert revoked["what"] == {"reason": "job done"}

    assert all(row["signature"] == "valid" for row in shown), shown
    assert all(row["inclusion"] == "valid" for row in shown), shown
    assert all(row["facts"] == "match" for row in shown), shown
    assert {row["details"] for row in shown} == {"signed"}
    assert "shown as signed ✓" in shown[0]["badges"]
    # The flow's records are neighbours in the log: every link after the first is checked.
    assert [row["chain"] for row in shown] == ["none"] + ["linked"] * 7
    size = int(page.get_attribute("#evidence", "data-tree-size"))
    assert f"included in checkpoint of size {size} ✓" in shown[0]["badges"]
    assert "signature ✓" in shown[0]["badges"]
    assert page.get_attribute("#evidence", "data-checkpoint") == "valid"
    assert page.get_attribute("#evidence", "data-state") == "valid"
    assert page.text_content("#status-now") == "revoked"

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "lineage-page.png"), full_page=True)


def test_a_denied_request_shows_the_policy_reasons(flow: Flow, page: Any) -> None:
    log_in(page, flow, f"/ui/requests/{flow.denied_id}")
    wait_checked(page)
    shown = rows(page)

    assert [row["event"] for row in shown] == ["requested", "evaluated", "denied"]
    reason = "ttl_seconds 3600 exceeds the cap of 1800 for report-write"
    assert shown[1]["outcome"] == "denied"
    assert reason in shown[1]["reasons"]
    assert reason in shown[2]["reasons"]
    assert all(row["signature"] == row["inclusion"] == "valid" for row in shown)
    assert page.text_content("#status-now") == "denied"


def test_one_changed_byte_in_a_served_line_is_invalid_in_the_browser(flow: Flow, page: Any) -> None:
    log_in(page, flow, f"/ui/requests/{flow.request_id}")
    wait_checked(page)
    page.evaluate(
        """() => {
            const row = document.querySelectorAll('li[data-record]')[0];
            const line = atob(row.dataset.line).replace('quarterly', 'quarterlY');
            row.dataset.line = btoa(line);
        }"""
    )
    page.evaluate("GrantlineLineage.checkPage(document)")
    wait_checked(page)
    shown = rows(page)

    assert (shown[0]["signature"], shown[0]["inclusion"]) == ("invalid", "invalid")
    assert "signature ✗" in shown[0]["badges"]
    assert all(row["signature"] == row["inclusion"] == "valid" for row in shown[1:])
    assert shown[1]["chain"] == "none"  # no link is claimed to a record that does not verify
    assert page.get_attribute("#evidence", "data-state") == "invalid"


def test_a_changed_proof_or_checkpoint_fails_inclusion_but_not_the_signature(
    flow: Flow, page: Any
) -> None:
    log_in(page, flow, f"/ui/requests/{flow.request_id}")
    wait_checked(page)
    page.evaluate(
        """() => {
            const row = document.querySelectorAll('li[data-record]')[1];
            const hashes = row.dataset.proof.split(' ');
            hashes[0] = btoa(String.fromCharCode(...new Uint8Array(32)));
            row.dataset.proof = hashes.join(' ');
        }"""
    )
    page.evaluate("GrantlineLineage.checkPage(document)")
    wait_checked(page)
    second = rows(page)[1]
    assert (second["signature"], second["inclusion"]) == ("valid", "invalid")

    page.evaluate(
        """() => {
            const evidence = document.getElementById('evidence');
            const note = atob(evidence.dataset.note).split('\\n');
            note[1] = String(Number(note[1]) + 1);
            evidence.dataset.note = btoa(note.join('\\n'));
        }"""
    )
    page.evaluate("GrantlineLineage.checkPage(document)")
    wait_checked(page)
    assert page.get_attribute("#evidence", "data-checkpoint") == "invalid"
    assert {row["inclusion"] for row in rows(page)} == {"invalid"}
    assert {row["signature"] for row in rows(page)} == {"valid"}


def test_a_hostile_purpose_is_shown_as_text_and_never_runs(flow: Flow, page: Any) -> None:
    log_in(page, flow, f"/ui/requests/{flow.hostile_id}")
    wait_checked(page)

    assert rows(page)[0]["what"]["purpose"] == HOSTILE
    assert rows(page)[0]["what"]["ticket"] == "</dd><b>x</b>"
    assert page.evaluate("window.pwned") is None
    assert page.query_selector("main img") is None
    assert rows(page)[0]["signature"] == "valid"


def test_the_search_finds_the_request_by_subject_and_opens_its_page(flow: Flow, page: Any) -> None:
    log_in(page, flow, "/ui/requests")
    page.fill("input[name=q]", ALICE)
    page.click("form.search button[type=submit]")
    page.wait_for_load_state()
    found = page.eval_on_selector_all(
        "tr[data-request-id]", "rs => rs.map(r => r.dataset.requestId)"
    )
    # Newest first.
    assert found == [flow.hostile_id, flow.denied_id, flow.request_id]

    page.click(f"a[href='/ui/requests/{flow.request_id}']")
    wait_checked(page)
    assert [row["event"] for row in rows(page)] == FLOW_EVENTS


def test_without_javascript_the_whole_timeline_shows_as_not_checked(
    flow: Flow, browser: Any
) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        log_in(page, flow, f"/ui/requests/{flow.request_id}")
        shown = rows(page)  # Playwright's own evaluation runs even with the page's scripts off
    finally:
        context.close()

    assert [row["event"] for row in shown] == FLOW_EVENTS
    assert {row["signature"] for row in shown} == {"pending"}
    assert {row["facts"] for row in shown} == {"pending"}
    assert {row["details"] for row in shown} == {"server"}
    assert all("signature not checked" in row["badges"] for row in shown)
    assert all("fields not checked" in row["badges"] for row in shown)
    assert shown[0]["who"]["for"] == ALICE
    assert shown[0]["what"]["purpose"] == "quarterly restatement"


def test_logging_in_as_a_non_auditor_is_refused(flow: Flow, page: Any) -> None:
    page.goto(f"{flow.served.url}/ui/requests")
    page.fill("textarea[name=token]", flow.served.token(ALICE))
    page.click("form[action='/ui/login'] button[type=submit]")
    page.wait_for_load_state()

    assert page.get_attribute("section.error", "data-status") == "403"
    assert not [c for c in page.context.cookies() if c["name"] == "grantline_ui"]


# -- a page that shows something else than its signed lines ---------------------------------

ALTERATIONS = {
    # name: (which request's page, pattern, replacement, the row it lands in)
    "purpose": (
        "request_id",
        r'(data-path="data\.request\.purpose">)quarterly restatement',
        r"\1routine key rotation",
        0,
    ),
    "approval reason": (
        "request_id",
        r'(data-path="data\.reason">)restatement CHG-77',
        r"\1emergency fix",
        2,
    ),
    "approver": (
        "request_id",
        r'(data-path="data\.approver\.subject">)user:sam',
        r"\1user:sofia",
        2,
    ),
    "label": ("request_id", r"<dt>for</dt>", "<dt>agent</dt>", 0),
    "fact left out": ("request_id", r'<dt>ticket</dt><dd data-path="[^"]*">CHG-77</dd>', "", 0),
    "fact added": (
        "request_id",
        r"<dt>ticket</dt>",
        r"<dt>approved by</dt><dd>the board</dd>\g<0>",
        0,
    ),
    "path moved": (
        "request_id",
        r'data-path="data\.request\.ticket"',
        'data-path="data.request.role"',
        0,
    ),
    "deny reason": (
        "denied_id",
        r'(<li data-path="data\.decision\.reasons\[0\]">)[^<]*',
        r"\1within policy",
        1,
    ),
    "deny reason hidden": (
        "denied_id",
        r'<li (data-path="data\.decision\.reasons\[0\]")',
        r"<li hidden \1",
        1,
    ),
    "outcome": ("denied_id", r'(data-path="data\.decision\.allow">)denied', r"\1allowed", 1),
    "image": ("request_id", r"<dt>ticket</dt>", r'<img alt="approved" src="data:,">\g<0>', 0),
}


def open_altered(page: Any, flow: Flow, request_id: str, pattern: str, replacement: str) -> None:
    """Log in, then open the page as the broker serves it with ``pattern`` replaced once."""
    log_in(page, flow, f"/ui/requests/{request_id}")
    url = f"{flow.served.url}/ui/requests/{request_id}"

    def alter(route: Any) -> None:
        served = route.fetch()
        original = served.text()
        changed = re.sub(pattern, replacement, original, count=1)
        assert changed != original, pattern
        route.fulfill(response=served, body=changed)

    page.route(url, alter)
    page.goto(url)
    wait_checked(page)


@pytest.mark.parametrize("alteration", ALTERATIONS)
def test_a_page_showing_other_fields_than_the_signed_record_fails_its_check(
    flow: Flow, page: Any, alteration: str
) -> None:
    which, pattern, replacement, index = ALTERATIONS[alteration]
    open_altered(page, flow, getattr(flow, which), pattern, replacement)
    shown = rows(page)

    assert shown[index]["signature"] == "valid"  # the line itself is untouched
    assert shown[index]["facts"] == "mismatch", shown[index]
    assert "shown fields differ from the signed record ✗" in shown[index]["badges"]
    assert all(row["facts"] == "match" for i, row in enumerate(shown) if i != index)
    assert page.get_attribute("#evidence", "data-state") == "invalid"
    verdict = page.text_content('[data-badge="verdict"]')
    assert verdict.startswith("the page shows fields that differ from the signed records ✗")


def test_the_details_are_written_from_the_verified_line_not_taken_from_the_page(
    flow: Flow, page: Any
) -> None:
    pattern = r'(<pre class="line">[^<]*?)quarterly restatement'
    open_altered(page, flow, flow.request_id, pattern, r"\1nothing to see")
    details = page.eval_on_selector(
        "li[data-record] >> nth=0 >> details",
        """details => ({
            source: details.dataset.source,
            line: details.querySelector("pre.line").textContent,
            fields: Object.fromEntries([...details.querySelectorAll("dt")]
                .map(dt => [dt.textContent, dt.nextElementSibling.textContent])),
        })""",
    )
    line = base64.b64decode(page.get_attribute("li[data-record] >> nth=0", "data-line"))

    assert details["source"] == "signed"
    assert details["line"] == line.decode()
    assert "quarterly restatement" in details["line"]
    assert details["fields"]["request.purpose"] == "quarterly restatement"
    assert page.get_attribute("#evidence", "data-state") == "valid"  # details are no shown facts


def test_the_broker_state_and_what_the_page_cannot_prove_are_said_on_the_page(flow: Flow) -> None:
    with auditor(flow) as client:
        html = client.get(f"/ui/requests/{flow.request_id}").text
    assert '<div class="state" data-source="broker-state">' in html
    assert "not from signed records: your browser does not check this part" in html
    assert "cannot tell whether a record of this request is missing" in html


# -- the page's checks, on fixed inputs -----------------------------------------------------


@pytest.fixture
def checks(page: Any) -> Any:
    """A blank page on localhost (a secure context, for WebCrypto) with the page's script."""
    page.route(
        "http://localhost/**",
        lambda route: route.fulfill(status=200, content_type="text/html", body="<!doctype html>"),
    )
    page.goto("http://localhost/fixture")
    page.add_script_tag(content=DISPLAY_JS)
    page.add_script_tag(content=LINEAGE_JS)
    return page


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def test_the_page_script_verifies_the_worked_example_and_refuses_one_changed_byte(
    checks: Any,
) -> None:
    line = example_line()
    verify = """async ([line, jwks, expected]) => {
        const keys = GrantlineLineage.trustedKeys(jwks);
        const line_bytes = GrantlineLineage.b64decode(line);
        const result = await GrantlineLineage.verifyRecord(line_bytes, keys, expected);
        return [result.ok, result.reason];
    }"""
    expected = {"seq": 1, "event": "requested"}

    assert checks.evaluate(verify, [b64(line), EXAMPLE_JWKS, expected]) == [True, ""]
    changed = line.replace(b"nightly export", b"nightly exporT")
    assert checks.evaluate(verify, [b64(changed), EXAMPLE_JWKS, expected])[0] is False
    respaced = line.replace(b'"seq":1', b'"seq": 1')
    assert checks.evaluate(verify, [b64(respaced), EXAMPLE_JWKS, expected])[0] is False
    shown_wrong = {"seq": 2, "event": "requested"}
    assert checks.evaluate(verify, [b64(line), EXAMPLE_JWKS, shown_wrong]) == [
        False,
        "the page shows seq 2, the record says 1",
    ]
    token_key = {"keys": [{**EXAMPLE_JWKS["keys"][0], "grantline_purpose": "token"}]}
    assert checks.evaluate(verify, [b64(line), token_key, expected])[0] is False
    chain = checks.evaluate(
        "line => GrantlineLineage.chainHash(GrantlineLineage.b64decode(line))", b64(line)
    )
    assert chain == EXAMPLE_CHAIN_HASH


def test_the_page_script_walks_inclusion_proofs_to_the_python_tree_root(checks: Any) -> None:
    root_of_proof = """async ([line, index, size, proof]) => {
        const leaf = await GrantlineLineage.leafHash(GrantlineLineage.b64decode(line));
        const root = await GrantlineLineage.rootFromInclusion(
            leaf, index, size, proof.map(GrantlineLineage.b64decode));
        return btoa(String.fromCharCode(...root));
    }"""
    for size in (1, 2, 3, 5, 7, 8, 13):
        lines = [f'{{"leaf":{i}}}'.encode() for i in range(size)]
        leaves = [leaf_hash(line) for line in lines]

        def perfect(level: int, index: int, leaves: list[bytes] = leaves) -> bytes:
            return root_of(leaves[index * 2**level : (index + 1) * 2**level])

        for index in range(size):
            proof = [b64(h) for h in inclusion_proof(index, size, perfect)]
            walked = checks.evaluate(root_of_proof, [b64(lines[index]), index, size, proof])
            assert walked == b64(root_of(leaves)), (size, index)
        if size > 1:
            proof = [b64(h) for h in inclusion_proof(0, size, perfect)]
            wrong_index = checks.evaluate(root_of_proof, [b64(lines[0]), 1, size, proof])
            assert wrong_index != b64(root_of(leaves))


def test_the_page_script_opens_a_checkpoint_note_only_with_its_key(checks: Any) -> None:
    signer = LocalEd25519Signer.from_seed(EXAMPLE_SEED)
    public = base64.urlsafe_b64decode(signer.public_jwk()["x"] + "=")
    origin = "grantline.example.org/log"
    note = sign_note(checkpoint_text(origin, 7, bytes(range(32))), origin, signer, public)
    key = NoteKey(origin, public).encode()
    open_note = """async ([note, key]) => {
        try {
            const logKey = await GrantlineLineage.parseLogKey(key);
            const opened = await GrantlineLineage.openNote(note, logKey);
            return [opened.origin, opened.size, btoa(String.fromCharCode(...opened.root))];
        } catch (error) { return ['refused', error.message]; }
    }"""

    assert checks.evaluate(open_note, [note, key]) == [origin, 7, b64(bytes(range(32)))]
    assert checks.evaluate(open_note, [note.replace("\n7\n", "\n8\n"), key]) == [
        "refused",
        "the note's signature does not verify",
    ]
    other = NoteKey("other.example/log", public).encode()
    assert checks.evaluate(open_note, [note, other])[0] == "refused"
    bad_id = key.replace("+", "+0", 1)[:-1]
    assert checks.evaluate(open_note, [note, bad_id])[0] == "refused"


# -- every kind of record, and odd values, against the page's own recomputation ------------

SIGNER = LocalEd25519Signer.from_seed(bytes(range(32)))
PUBLIC = base64.urlsafe_b64decode(SIGNER.public_jwk()["x"] + "=")
ORIGIN = "localhost/grantline"
RID = "019ab0c4-2f5b-7c3e-8a1d-5e2f9b7c4d10"
# Characters an HTML parser changes (CR, NUL), bidi overrides, invisible ones, an emoji.
ODD = "one\r\ntwo\tthree\x00 \u202eevil\u202c zero\u200bwidth \x7f\x85 \U0001f600 <b>&amp;"
IDENTITY = {"subject": "user:alice", "issuer": "dev", "claims_sha256": "sha256:" + "a" * 64}
DECISION = {"allow": True, "reasons": [], "rule": "approval", "policy_digest": "sha256:pd"}
EVERY_KIND: list[tuple[str, dict[str, Any]]] = [
    (
        "requested",
        {
            "identity": IDENTITY,
            "actor": {"subject": "agent:a", "chain": ["agent:a", ODD, 7]},
            "request": {
                "target": "postgres://orders-db",
                "role": "db-admin",
                "ttl_seconds": 900,
                "credential_type": "jwt",
                "purpose": ODD,
                "ticket": "x" * 2500,
                "justification": "\U0001f600" * 2100,
                "agent": {"goal": "g", "tool": ["psql", 1], "10": "ten", "9": "nine"},
                "break_glass": True,
            },
            "break_glass": True,
            "keys": {"\uffff": 1, "\U0001f600": 2, "__proto__": "p", "constructor": [True, 1, "x"]},
        },
    ),
    (
        "evaluated",
        {
            "decision": {
                "allow": False,
                "reasons": ["too long", ODD, {"code": "x"}, 3],
                "require_approval": False,
                "rule": "rbac",
                "policy_digest": "sha256:pd",
            },
            "policy_digest": "sha256:pd",
            "input_digest": "sha256:in",
        },
    ),
    (
        "evaluated",
        {
            "decision": {"allow": "yes", "reasons": "one reason", "policy_digest": "sha256:other"},
            "policy_digest": "sha256:pd",
        },
    ),
    ("evaluated", {"decision": "not an object"}),
    ("denied", {"reasons": ["no binding", ""]}),
    ("denied", {"reasons": ODD}),
    (
        "approval_given",
        {"approver": IDENTITY, "reason": ODD, "groups": ["security"], "decision": DECISION},
    ),
    (
        "approval_refused",
        {
            "approver": IDENTITY,
            "action": "approve",
            "reason": "",
            "decision": {**DECISION, "allow": False},
        },
    ),
    ("rejected", {"approver": {"subject": "user:sam"}, "reason": "no", "decision": DECISION}),
    (
        "approved",
        {
            "by": "approvers",
            "approvers": {"security": ["user:sam"], "platform-oncall": ["user:bob", "user:c"]},
            "requirement": {"all_of": [{"group": "security", "count": 1}, {"group": "x"}]},
        },
    ),
    ("approved", {"by": "policy", "rule": "rbac", "policy_digest": "sha256:pd"}),
    (
        "approved",
        {"by": "break_glass", "justification": ODD, "requirement": [1, 2], "review_due_at": "t"},
    ),
    (
        "issued",
        {
            "credential_type": "vault_token",
            "fingerprint": "sha256:ff",
            "issued_at": "2026-11-23T10:00:00.000Z",
            "expires_at": "2026-11-23T10:10:00.000Z",
            "handle": {"accessor": "acc", "nested": {"a": [1, {"b": None}]}},
            "cnf": {"jkt": "thumb"},
            "act": {"sub": "agent:a", "act": {"sub": ODD, "act": {"sub": 3}}},
        },
    ),
    ("collected", {"by": "user:alice"}),
    ("reviewed", {"by": "user:sam", "reason": "fine"}),
    ("revoked", {"by": "system", "source": "reconciler", "reason": "expired at Vault"}),
    ("revocation_failed", {"by": "user:alice", "reason": "r", "error": {"message": ODD}}),
    ("expired", {"phase": "pending_approval", "deadline": "t", "missing": ["security"]}),
    ("failed", {"code": "issuer_unavailable", "message": ODD}),
    ("notification_failed", {"event": "issued", "attempts": 6, "error": "timeout"}),
    ("reconciled", {"finding": "orphan", "action": "revoked", "extra": [[1, 2], []]}),
    ("renewed", {"until": "later", "deep": {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}}),
    ("some_new_kind", {f"k{i}": i for i in range(250)}),
    ("", {}),
]


def signed_lineage(records: list[tuple[str, dict[str, Any]]]) -> list[bytes]:
    """The records as a log of their own, seq 1 on, chained and signed."""
    lines, prev = [], GENESIS
    for seq, (event, data) in enumerate(records, start=1):
        body = {
            "v": 1,
            "seq": seq,
            "prev": prev,
            "request_id": RID,
            "event": event,
            "at": f"2026-11-23T10:00:{seq % 60:02d}.000Z",
            "data": data,
        }
        lines.append(seal(body, SIGNER, RECORD_DOMAIN))
        prev = chain_hash(lines[-1])
    return lines


def rendered(lines: list[bytes]) -> str:
    """The lineage page of ``lines`` as the broker renders it, with a checkpoint over them."""
    leaves = [leaf_hash(line) for line in lines]

    def perfect(level: int, index: int) -> bytes:
        return root_of(leaves[index * 2**level : (index + 1) * 2**level])

    note = sign_note(checkpoint_text(ORIGIN, len(lines), root_of(leaves)), ORIGIN, SIGNER, PUBLIC)
    page = lineage_page(
        RID,
        [row_of(line) for line in lines],
        summary=None,
        checkpoint=Checkpoint(b64(note.encode()), len(lines)),
        proofs={
            seq: inclusion_proof(seq - 1, len(lines), perfect) for seq in range(1, len(lines) + 1)
        },
    )
    return bytes(pages.render("lineage.html", who=AUDITOR, page=page).body).decode()


def open_offline(page: Any, html: str) -> None:
    """``html`` as the page of http://localhost (a secure context), with the broker's script,
    style, JWKS and log key."""
    jwks = {"keys": [{**SIGNER.public_jwk(), "grantline_purpose": "log"}]}
    files = {
        f"/ui/requests/{RID}": ("text/html", html),
        "/ui/static/display.js": ("text/javascript", DISPLAY_JS),
        "/ui/static/lineage.js": ("text/javascript", LINEAGE_JS),
        "/ui/static/ui.css": ("text/css", pages.static_bytes("ui.css").decode()),
        "/.well-known/jwks.json": ("application/json", json.dumps(jwks)),
        "/.well-known/grantline-log-key": ("text/plain", NoteKey(ORIGIN, PUBLIC).encode()),
    }

    def answer(route: Any) -> None:
        content_type, body = files[urlsplit(route.request.url).path]
        route.fulfill(
            status=200, content_type=content_type, body=body, headers=pages.SECURITY_HEADERS
        )

    page.route("http://localhost/**", answer)
    page.goto(f"http://localhost/ui/requests/{RID}")
    wait_checked(page)


def test_every_kind_of_record_with_odd_values_is_shown_as_signed(page: Any) -> None:
    lines = signed_lineage(EVERY_KIND)
    open_offline(page, rendered(lines))
    shown = rows(page)

    assert [row["event"] for row in shown] == [event for event, _ in EVERY_KIND]
    assert [row["facts"] for row in shown] == ["match"] * len(lines), [
        (
            row["event"],
            page.get_attribute(f'li[data-seq="{row["seq"]}"] [data-badge=facts]', "title"),
        )
        for row in shown
        if row["facts"] != "match"
    ]
    assert {row["signature"] for row in shown} == {row["inclusion"] for row in shown} == {"valid"}
    assert page.get_attribute("#evidence", "data-state") == "valid"
    assert shown[0]["what"]["purpose"] == text_of(ODD)
    assert "\\u202e" in shown[0]["what"]["purpose"]  # the override is shown, not obeyed
    # The details the script wrote from the verified lines are what the server would show.
    written = page.eval_on_selector_all(
        "li[data-record] details",
        """all => all.map(details => [...details.querySelectorAll("dt")]
            .map(dt => [dt.textContent, dt.nextElementSibling.textContent]))""",
    )
    assert written == [[[f.label, f.value] for f in row_of(line).details] for line in lines]


SWAPPED = (
    r'(<li class="record[^>]*data-seq="1".*?</li>)\s*(<li class="record[^>]*data-seq="2".*?</li>)'
)
CHAIN_BADGE = '<span class="badge badge-none" data-badge="chain">'
TAMPERING = {
    "hidden": (
        '<dd data-path="data.request.role"',
        '<dd hidden data-path="data.request.role"',
    ),
    "text between facts": ("<dt>role</dt>", "approved by the board <dt>role</dt>"),
    "a badge of its own": (CHAIN_BADGE, f'<span class="badge">approved ✓</span>{CHAIN_BADGE}'),
}


@pytest.mark.parametrize("tampering", TAMPERING)
def test_hidden_or_unbacked_content_in_a_row_fails_its_check(page: Any, tampering: str) -> None:
    old, new = TAMPERING[tampering]
    html = rendered(signed_lineage(EVERY_KIND[:3]))
    assert old in html
    open_offline(page, html.replace(old, new, 1))  # lands in the first row
    shown = rows(page)

    assert [row["facts"] for row in shown] == ["mismatch", "match", "match"]
    assert {row["signature"] for row in shown} == {"valid"}
    assert page.get_attribute("#evidence", "data-state") == "invalid"


def test_records_out_of_log_order_or_under_another_heading_fail(page: Any) -> None:
    plain_rows = [
        (event, data) for event, data in EVERY_KIND if event in ("collected", "reviewed", "revoked")
    ]
    html = rendered(signed_lineage(plain_rows))  # rows without a list inside: <li> ends them
    swapped = re.sub(SWAPPED, r"\2\1", html, count=1, flags=re.DOTALL)
    assert swapped != html
    open_offline(page, swapped)
    assert [row["seq"] for row in rows(page)] == [2, 1, 3]
    assert [row["facts"] for row in rows(page)] == ["match", "mismatch", "match"]
    assert page.get_attribute("#evidence", "data-state") == "invalid"

    other = html.replace(
        f'<code class="request-id">{RID}</code>', '<code class="request-id">r-2</code>'
    )
    open_offline(page, other)
    assert {row["facts"] for row in rows(page)} == {"match"}
    assert page.get_attribute("#evidence", "data-state") == "invalid"
    assert page.text_content('[data-badge="verdict"]') == (
        "the heading names another request than the records ✗"
    )


def odd_values(count: int) -> list[Any]:
    """JSON values of every shape, with the strings that tell formatters apart."""
    chooser = random.Random(7)  # noqa: S311 — test data, the same on every run
    strings = [
        "",
        "plain",
        ODD,
        "\ud800 lone",
        "\uffff",
        "\U0001f600",
        "9",
        "10",
        "__proto__",
        "a" * 2100,
        "\U0001f600" * 1999 + "\u202e",
    ]

    def value(depth: int) -> Any:
        kind = chooser.randrange(8 if depth < 4 else 5)
        if kind == 0:
            return chooser.choice([None, True, False])
        if kind == 1:
            return chooser.choice([0, -1, 7, 2**53 - 1])
        if kind in (2, 3, 4):
            return chooser.choice(strings)
        if kind == 5:
            return [value(depth + 1) for _ in range(chooser.randrange(4))]
        return {chooser.choice(strings): value(depth + 1) for _ in range(chooser.randrange(4))}

    return [value(0) for _ in range(count)]


def test_the_page_script_formats_values_exactly_as_the_server(checks: Any) -> None:
    values = odd_values(400)
    values += [
        {"all_of": [{"group": "security", "count": 1}, {"count": True}]},
        {"sub": "a", "act": {"sub": ["b"], "act": {"sub": None}}},
        [1, True],
        {"a": "b", "c": ["d", 1]},
        900,
    ]
    recompute = """([texts, names]) => texts.map(text => {
        const value = JSON.parse(text);
        const formatted = names.map(name => GrantlineDisplay.format(name, value));
        return [formatted, GrantlineDisplay.flatten(value)];
    })"""
    # ensure_ascii: lone surrogates travel as escapes, and JSON.parse gives them back alike.
    got = checks.evaluate(recompute, [[json.dumps(v) for v in values], list(FORMATS)])
    expected = [
        [[format_(v) for format_ in FORMATS.values()], [[f.label, f.value] for f in flatten(v)]]
        for v in values
    ]
    assert got == expected


# -- auth, headers, errors and escaping over plain HTTP -------------------------------------


def assert_guarded(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (response.request.url, name)


def test_without_a_session_a_page_redirects_to_the_login_form(flow: Flow) -> None:
    with anonymous(flow) as client:
        response = client.get(f"/ui/requests/{flow.request_id}?x=1")
        assert response.status_code == 303
        assert response.headers["location"] == (
            f"/ui/login?next=%2Fui%2Frequests%2F{flow.request_id}%3Fx%3D1"
        )
        assert_guarded(response)
        form = client.get(response.headers["location"])
    assert form.status_code == 200
    assert f'name="next" value="/ui/requests/{flow.request_id}?x=1"' in form.text
    assert_guarded(form)


def test_a_non_auditor_gets_403_and_an_unknown_request_404_as_pages(flow: Flow) -> None:
    with flow.served.client(ALICE) as client:
        forbidden = client.get(f"/ui/requests/{flow.request_id}")
        own_search = client.get("/ui/requests")
    with auditor(flow) as client:
        missing = client.get("/ui/requests/no-such-request")
        nowhere = client.get("/ui/no/such/page")
    for response, status in ((forbidden, 403), (own_search, 403), (missing, 404), (nowhere, 404)):
        assert response.status_code == status
        assert response.headers["content-type"].startswith("text/html")
        assert f'data-status="{status}"' in response.text
        assert_guarded(response)


def test_malformed_parameters_are_400_pages_never_500(flow: Flow) -> None:
    with auditor(flow) as client:
        answers = [
            client.get("/ui/requests?before=abc"),
            client.get("/ui/requests?before=0"),
            client.get("/ui/requests?status=bogus"),
            client.get("/ui/requests?q=" + "x" * 500),
            client.get("/ui/requests/" + "x" * 300),
            client.get("/ui/static/%2E%2E%2Fconfig.py"),
            client.get("/ui/static/nothing.js"),
        ]
    assert [r.status_code for r in answers] == [400, 400, 400, 400, 400, 404, 404]
    for response in answers:
        assert response.headers["content-type"].startswith("text/html")
        assert_guarded(response)


def test_record_text_is_escaped_in_the_html(flow: Flow) -> None:
    with auditor(flow) as client:
        html = client.get(f"/ui/requests/{flow.hostile_id}").text
    assert "<script>window.pwned" not in html
    assert "&lt;script&gt;window.pwned = 1&lt;/script&gt;" in html
    assert "<b>x</b>" not in html
    assert re.findall(r"<script[^>]*>", html) == [
        '<script src="/ui/static/display.js" defer>',
        '<script src="/ui/static/lineage.js" defer>',
    ]


def test_the_search_finds_by_role_id_prefix_and_status(flow: Flow) -> None:
    def found(**params: str) -> list[str]:
        with auditor(flow) as client:
            response = client.get("/ui/requests", params=params)
        assert response.status_code == 200
        assert_guarded(response)
        return re.findall(r'<tr data-request-id="([^"]+)"', response.text)

    everything = [flow.hostile_id, flow.denied_id, flow.request_id]
    assert found(q="report-write") == everything
    assert found(q="REPORT-WRITE") == everything
    assert found(q=flow.request_id[:20]) == [flow.request_id]
    assert found(q=flow.request_id) == [flow.request_id]
    assert found(q="s3://reports", status="revoked") == [flow.request_id]
    assert found(status="denied") == [flow.denied_id]
    assert found(q="db-admin") == []
    assert found(q="user:alice", before="5") == [flow.request_id]


def test_login_sets_a_strict_http_only_cookie_bounded_by_the_token(flow: Flow) -> None:
    token = flow.served.token(AUDITOR)
    with anonymous(flow) as client:
        response = client.post(
            "/ui/login",
            content=f"token={token}&next=%2Fui%2Frequests%3Fq%3Dalice",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/ui/requests?q=alice"
        assert_guarded(response)
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"grantline_ui={token};")
        attributes = {
            part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")
        }
        assert {"httponly", "path", "samesite", "max-age"} <= set(attributes)
        assert attributes["path"] == "Path=/ui"
        assert attributes["samesite"].lower() == "samesite=strict"
        assert "secure" not in attributes  # served over plain http here
        assert 0 < int(attributes["max-age"].split("=")[1]) <= 3600  # dev tokens live an hour

        assert client.get("/ui/requests").status_code == 200  # the cookie jar sends it
        out = client.post("/ui/logout")
        assert out.status_code == 303
        assert out.headers["location"] == "/ui/login"
        assert "Max-Age=0" in out.headers["set-cookie"]
        assert client.get("/ui/requests").status_code == 303


def test_the_api_never_takes_the_session_cookie_for_a_bearer_token(flow: Flow) -> None:
    # The API has no CSRF defence of its own: a cookie a browser sends by itself must never
    # authenticate it. The same auditor token works as a bearer token, so a 401 here is the
    # cookie being ignored, not the token being refused.
    token = flow.served.token(AUDITOR)
    with anonymous(flow) as client:
        as_bearer = client.get("/v1/records", headers={"authorization": f"Bearer {token}"})
        as_cookie = client.get("/v1/records", headers={"cookie": f"grantline_ui={token}"})
    assert as_bearer.status_code == 200
    assert as_cookie.status_code == 401


def test_a_bad_token_or_a_cross_site_post_does_not_log_in(flow: Flow) -> None:
    token = flow.served.token(AUDITOR)
    form = {"content-type": "application/x-www-form-urlencoded"}
    with anonymous(flow) as client:
        bad = client.post("/ui/login", content="token=not.a.jwt", headers=form)
        cross = client.post(
            "/ui/login", content=f"token={token}", headers={**form, "sec-fetch-site": "cross-site"}
        )
        foreign = client.post(
            "/ui/login", content=f"token={token}", headers={**form, "origin": "http://evil.test"}
        )
        empty = client.post("/ui/login", content="next=/ui", headers=form)
    assert bad.status_code == 401
    assert 'name="token"' in bad.text
    assert (cross.status_code, foreign.status_code, empty.status_code) == (403, 403, 422)
    for response in (bad, cross, foreign, empty):
        assert "set-cookie" not in response.headers
        assert_guarded(response)


def test_a_cookie_that_no_longer_verifies_sends_back_to_the_login_form(flow: Flow) -> None:
    with httpx.Client(
        base_url=flow.served.url, cookies={"grantline_ui": "garbage"}, timeout=10
    ) as client:
        stale = client.get("/ui/requests")
    assert stale.status_code == 303
    assert stale.headers["location"] == "/ui/login?next=%2Fui%2Frequests"
    assert "grantline_ui=" in stale.headers["set-cookie"]
    assert "Max-Age=0" in stale.headers["set-cookie"]


@pytest.mark.parametrize(
    "next_path",
    [
        "//evil.example/",
        "https://evil.example/ui",
        "/\\evil.example",
        "/ui/../v1/records",
        "/ui/%2e%2e/v1/records",
        "/ui/%2E%2E/%2e%2e/v1/records",
        "/ui//evil.example",
        "/uievil",
        "javascript:alert(1)",
        "/ui/requests\r\nSet-Cookie: x=1",
    ],
)
def test_login_never_redirects_off_the_auditor_pages(flow: Flow, next_path: str) -> None:
    token = flow.served.token(AUDITOR)
    body = httpx.QueryParams({"token": token, "next": next_path})
    with anonymous(flow) as client:
        response = client.post(
            "/ui/login",
            content=str(body),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        form = client.get("/ui/login", params={"next": next_path})
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/requests"
    assert 'name="next" value="/ui/requests"' in form.text


# -- a lineage longer than one page, on a broker behind a TLS proxy --------------------------


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    """A request whose requester posted approvals of her own until its lineage outgrew a page
    (each refusal is recorded); its broker's public URL is https, its own socket plain http."""
    served = serve(
        tmp_path_factory.mktemp("crowded") / "home",
        extra_env={"GRANTLINE_PUBLIC_URL": "https://grantline.test"},
    )
    try:
        flow = Flow(served)
        flow.request_id = ask(served)
        path = f"/v1/access-requests/{flow.request_id}/approve"
        with served.client(ALICE) as client:
            for _ in range(FIRST_ROWS + LAST_ROWS + 10):
                assert client.post(path, json={"reason": "my own"}).status_code == 403
        yield flow
    finally:
        served.stop()


def test_a_long_lineage_shows_its_first_and_last_records_and_how_many_it_leaves_out(
    crowded: Flow,
) -> None:
    rid = crowded.request_id
    with auditor(crowded) as client:
        html = client.get(f"/ui/requests/{rid}").text
        records = client.get(f"/v1/access-requests/{rid}/lineage").json()["records"]
    every = [record["seq"] for record in records]
    shown = [int(seq) for seq in re.findall(r'data-record\s+data-seq="(\d+)"', html)]

    assert len(every) == FIRST_ROWS + LAST_ROWS + 12  # requested, evaluated, 260 refusals
    assert shown == every[:FIRST_ROWS] + every[-LAST_ROWS:]
    assert html.count("data-proof=") == len(shown)  # proofs only of the records shown
    assert 'data-omitted="12"' in html
    assert '<li class="gap">12 records not shown</li>' in html
    assert f"grantline audit export --request-id {rid} --out FILE" in html
    assert f"{len(every)} records, {len(shown)} shown" in html


def test_a_long_lineage_page_still_verifies_in_the_browser(crowded: Flow, page: Any) -> None:
    page.set_extra_http_headers({"authorization": f"Bearer {crowded.served.token(AUDITOR)}"})
    page.goto(f"{crowded.served.url}/ui/requests/{crowded.request_id}")
    wait_checked(page)
    shown = rows(page)

    assert len(shown) == FIRST_ROWS + LAST_ROWS
    assert {row["facts"] for row in shown} == {"match"}
    assert page.get_attribute("#evidence", "data-state") == "valid"
    assert shown[FIRST_ROWS]["chain"] == "none"  # the record before it is not on the page
    assert page.text_content("li.gap") == "12 records not shown"


def test_behind_a_tls_proxy_the_session_cookie_is_secure(crowded: Flow) -> None:
    token = crowded.served.token(AUDITOR)
    with anonymous(crowded) as client:  # plain http to the broker, as from the proxy
        response = client.post(
            "/ui/login",
            content=f"token={token}",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 303
    attributes = [part.strip().lower() for part in response.headers["set-cookie"].split(";")]
    assert "secure" in attributes
