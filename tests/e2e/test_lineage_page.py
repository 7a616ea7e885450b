"""The lineage page end to end: a served broker, a request driven through approval, issuance,
collection and revocation, and the page opened in Debian's headless Chromium (Playwright),
logged in through its form, its timeline and the browser's own verification read from the
DOM. Also the page's JavaScript checks against the worked example of docs/evidence-format.md
and against Grantline's Python Merkle tree and notes, and the pages' auth, headers and
escaping over plain HTTP.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import REPO, Served, serve

from grantline.evidence.merkle import inclusion_proof, leaf_hash, root_of
from grantline.evidence.note import NoteKey, checkpoint_text, sign_note
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
STATIC_JS = REPO / "src" / "grantline" / "api" / "static" / "lineage.js"
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
                chain: row.dataset.chain,
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
    assert [row["seq"] for row in shown] == list(range(1, 9))
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
            const row = document.querySelector('li[data-record][data-seq="1"]');
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
            const row = document.querySelector('li[data-record][data-seq="2"]');
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
    assert all("signature not checked" in row["badges"] for row in shown)
    assert shown[0]["who"]["for"] == ALICE


def test_logging_in_as_a_non_auditor_is_refused(flow: Flow, page: Any) -> None:
    page.goto(f"{flow.served.url}/ui/requests")
    page.fill("textarea[name=token]", flow.served.token(ALICE))
    page.click("form[action='/ui/login'] button[type=submit]")
    page.wait_for_load_state()

    assert page.get_attribute("section.error", "data-status") == "403"
    assert not [c for c in page.context.cookies() if c["name"] == "grantline_ui"]


# -- the page's checks, on fixed inputs -----------------------------------------------------


@pytest.fixture
def checks(page: Any) -> Any:
    """A blank page on localhost (a secure context, for WebCrypto) with the page's script."""
    page.route(
        "http://localhost/**",
        lambda route: route.fulfill(status=200, content_type="text/html", body="<!doctype html>"),
    )
    page.goto("http://localhost/fixture")
    page.add_script_tag(content=STATIC_JS.read_text())
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
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/ui/static/lineage.js" defer>']


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
        assert client.get("/v1/records").status_code == 401  # only to /ui, never to the API
        out = client.post("/ui/logout")
        assert out.status_code == 303
        assert out.headers["location"] == "/ui/login"
        assert "Max-Age=0" in out.headers["set-cookie"]
        assert client.get("/ui/requests").status_code == 303


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
