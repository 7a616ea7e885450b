"""The SVG plots are well-formed XML, labelled for assistive technology, and escape whatever
the records named."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from grantline.report.plots import SVG_NS, duration, issue_svg, timeline_svg, ttl_svg
from grantline.report.summary import (
    Bucket,
    Distribution,
    HistogramBin,
    Timeline,
    TimeToIssue,
    TtlRow,
)

HOSTILE = '<script>alert("x")</script>&\x01'
NS = {"svg": SVG_NS}


def ttl_rows() -> tuple[TtlRow, ...]:
    return (
        TtlRow("db-read", False, 3600, 5, 0, 60, 600, 3600, ((60, 1), (600, 3), (3600, 1))),
        TtlRow("db-write", False, 900, 3, 2, 600, 901, 5000, ((600, 1), (901, 1), (5000, 1))),
        TtlRow("db-admin", True, 900, 1, 0, 900, 900, 900, ((900, 1),)),
        TtlRow(HOSTILE, False, None, 1, 0, 60, 60, 60, ((60, 1),)),
    )


def timeline() -> Timeline:
    return Timeline(
        60,
        (
            Bucket("2026-11-23T10:00:00.000Z", 5, 1),
            Bucket("2026-11-23T10:01:00.000Z", 0, 0),
            Bucket("2026-11-23T10:02:00.000Z", 12, 3),
        ),
    )


def issue() -> TimeToIssue:
    spread = Distribution(3, 4, 9, 9, 9)
    return TimeToIssue(
        ("policy", "approvers", "break_glass"),
        (spread, Distribution(1, 2000, 2000, 2000, 2000), Distribution(0, None, None, None, None)),
        (HistogramBin("≤ 10 ms", 10, (3, 0, 0)), HistogramBin("> 1 h", None, (0, 1, 0))),
    )


def parsed(svg: str) -> ET.Element:
    # Our own output, not untrusted input; fromstring raises on anything not well-formed.
    root = ET.fromstring(svg)  # noqa: S314
    assert root.tag == f"{{{SVG_NS}}}svg"
    assert root.get("role") == "img"
    ids = {node.get("id") for node in root.iter() if node.get("id")}
    labelled_by = root.get("aria-labelledby", "").split()
    assert labelled_by
    assert set(labelled_by) <= ids
    assert root.find("svg:title", NS) is not None
    assert root.find("svg:desc", NS) is not None
    return root


@pytest.mark.parametrize(
    "svg",
    [
        timeline_svg(timeline()),
        ttl_svg(ttl_rows()),
        issue_svg(issue()),
        timeline_svg(Timeline(60, ())),
        ttl_svg(()),
    ],
)
def test_every_plot_is_well_formed_and_labelled(svg: str) -> None:
    parsed(svg)


def test_the_timeline_draws_one_bar_pair_per_bucket_with_its_numbers() -> None:
    root = parsed(timeline_svg(timeline(), ident="t1"))
    groups = root.findall("svg:g", NS)
    assert len(groups) == 3
    tips = [g.findtext("svg:title", namespaces=NS) for g in groups]
    assert tips[0] == "10:00: 5 grants, 1 denials"
    assert "17 grants and 4 denials" in (root.findtext("svg:desc", namespaces=NS) or "")
    assert root.get("aria-labelledby") == "t1-title t1-desc"


def test_ttl_dots_are_coloured_against_the_cap_and_caps_are_drawn() -> None:
    root = parsed(ttl_svg(ttl_rows()))
    dots = root.findall("svg:circle", NS)
    assert len(dots) == 3 + 3 + 1 + 1
    above = [d for d in dots if d.get("fill") == "#c62828"]
    assert {d.findtext("svg:title", namespaces=NS) for d in above} == {
        "db-write: 1 requests of 15 min 1 s",
        "db-write: 1 requests of 1 h 23 min 20 s",
    }
    caps = [ln.findtext("svg:title", namespaces=NS) for ln in root.findall("svg:line", NS)]
    assert "db-admin (break-glass): cap 15 min" in caps


def test_names_from_records_are_escaped_and_control_characters_replaced() -> None:
    svg = ttl_svg(ttl_rows())
    assert "<script>" not in svg
    assert "\x01" not in svg
    texts = [t.text for t in parsed(svg).iter(f"{{{SVG_NS}}}text")]
    assert '<script>alert("x")</script>&\ufffd'[:27] + "…" in texts


def test_time_to_issue_draws_a_bar_for_each_kind_and_bin_with_grants() -> None:
    root = parsed(issue_svg(issue()))
    bars = root.findall("svg:rect", NS)
    assert [bar.findtext("svg:title", namespaces=NS) for bar in bars] == [
        "policy, ≤ 10 ms: 3 grants",
        "approvers, > 1 h: 1 grants",
    ]
    assert "policy 3, approvers 1, break_glass 0" in (
        root.findtext("svg:desc", namespaces=NS) or ""
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (45, "45 s"),
        (2.5, "2.5 s"),
        (60, "1 min"),
        (900, "15 min"),
        (901, "15 min 1 s"),
        (5400, "1 h 30 min"),
        (86_400, "1 d"),
        (0, "0 s"),
    ],
)
def test_durations_read_like_people_write_them(seconds: int, text: str) -> None:
    assert duration(seconds) == text
