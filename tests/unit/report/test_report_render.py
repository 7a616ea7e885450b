"""The page and its JSON twin: same numbers, everything from records escaped, the banner
saying what verification found, lineage links when the broker is known."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from report_support import Log
from test_report_figures import figures_of, scenario

from grantline.report.build import (
    FORMAT,
    Report,
    Verification,
    VerifyFinding,
    as_json,
    control_rows,
    facts_of,
    lineage_url,
)
from grantline.report.render import json_path_of, render_html, write_report

BROKER = "https://broker.example"
CLEAN = Verification(True, True, 40, 40, 40, "2026-11-23T10:01:00.000Z", (), (), 0)
FORGED = VerifyFinding("integrity", "bad_signature", 14, "d1", "the signature does not verify", 14)
UNREVIEWED = VerifyFinding("policy", "break_glass_unreviewed", 30, "b1", "never reviewed", 30)


class Page(HTMLParser):
    """The tags, links and text of a page."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.classes: list[str] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        found = dict(attrs)
        if tag == "a" and found.get("href"):
            self.links.append(str(found["href"]))
        if found.get("id"):
            self.ids.add(str(found["id"]))
        self.classes.append(found.get("class") or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def report_of(log: Log, verification: Verification = CLEAN, base: str | None = BROKER) -> Report:
    figures = figures_of(log)
    return Report(
        format=FORMAT,
        generated_at="2026-11-23T11:00:00.000Z",
        source=base or "export.jsonl",
        lineage_base=base,
        verification=verification,
        figures=figures,
        controls=control_rows(facts_of(figures, verification)),
    )


def test_the_page_escapes_what_records_say_and_runs_no_script() -> None:
    html = render_html(report_of(scenario()))
    page = Page(html)
    assert "script" not in page.tags
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert any("<script>alert(1)</script>" in text for text in page.text)
    assert "default-src 'none'" in html
    assert "http" not in " ".join(link for link in page.links if not link.startswith(BROKER))


def test_requests_link_to_their_lineage_page() -> None:
    page = Page(render_html(report_of(scenario())))
    assert f"{BROKER}/ui/requests/d1" in page.links
    assert f"{BROKER}/ui/requests/b1" in page.links
    assert lineage_url(BROKER + "/", "a/b?c") == f"{BROKER}/ui/requests/a%2Fb%3Fc"


def test_without_a_broker_requests_are_named_not_linked() -> None:
    page = Page(render_html(report_of(scenario(), base=None)))
    assert not [link for link in page.links if "/ui/requests/" in link]
    assert "d1" in page.text


def test_the_page_has_every_section_and_its_plots() -> None:
    page = Page(render_html(report_of(scenario())))
    sections = {"verification", "overview", "grants", "denials", "approvals", "break-glass"}
    sections |= {"time-to-issue", "ttl", "credentials", "findings", "controls"}
    assert sections <= page.ids
    assert page.tags.count("svg") == 3
    assert {"timeline-title", "ttl-title", "time-to-issue-title"} <= page.ids
    assert "controls-table" in page.ids


@pytest.mark.parametrize(
    ("verification", "banner", "heading"),
    [
        (CLEAN, "banner ok", "Verified: OK"),
        (
            Verification(False, True, 40, 40, 40, None, (), (UNREVIEWED,), 1),
            "banner warn",
            "Verified, with 1 policy findings",
        ),
        (
            Verification(False, False, 40, 0, None, None, (), (FORGED,), 1),
            "banner fail",
            "Verification FAILED",
        ),
    ],
)
def test_the_banner_says_what_verification_found(
    verification: Verification, banner: str, heading: str
) -> None:
    html = render_html(report_of(scenario(), verification))
    page = Page(html)
    assert banner in page.classes
    assert heading in html
    for finding in verification.findings:
        assert f"{BROKER}/ui/requests/{finding.request_id}" in page.links


def test_the_json_twin_carries_the_numbers_the_page_shows(tmp_path: Path) -> None:
    report = report_of(scenario())
    html_path = tmp_path / "report.html"
    json_path = write_report(report, html_path)
    assert json_path == json_path_of(html_path) == tmp_path / "report.json"
    data = json.loads(json_path.read_text())
    assert data == json.loads(json.dumps(as_json(report)))
    assert data["figures"]["grants"]["total"] == 6
    example = data["figures"]["denials"]["by_reason"][0]["examples"][0]
    assert example["url"] == f"{BROKER}/ui/requests/{example['request_id']}"
    page = Page(html_path.read_text())
    assert "6" in page.text
    assert not list(tmp_path.glob("*.partial"))
