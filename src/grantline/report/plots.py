"""Inline SVG plots of a report, drawn in Python: no script, no stylesheet, no external asset.

Built with ElementTree, so whatever comes from records (role names, labels) is escaped as
XML. Each plot is ``role="img"`` with a ``<title>`` and ``<desc>`` named by
``aria-labelledby``; each mark has its own ``<title>`` (a tooltip in any browser).
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

from grantline.report.summary import Timeline, TimeToIssue, TtlRow

SVG_NS = "http://www.w3.org/2000/svg"
WIDTH = 760
GRANT, DENIAL, CAP, WITHIN, UNKNOWN = "#2e7d32", "#c62828", "#b71c1c", "#1565c0", "#757575"
KIND_COLOURS = ("#1565c0", "#6a1b9a", "#ef6c00")
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 12, 28, 44
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_TTL_LABEL = 190
_MAX_BAR = 48
_ISSUE_ROW = 64
_ISSUE_LABEL = 110
_TTL_ROW = 30
_TTL_TICKS = (
    (1, "1 s"),
    (10, "10 s"),
    (60, "1 min"),
    (600, "10 min"),
    (3600, "1 h"),
    (86_400, "1 d"),
    (7 * 86_400, "7 d"),
    (30 * 86_400, "30 d"),
)


def duration(seconds: float) -> str:
    """A human duration, exact to the second: 45 s, 15 min, 15 min 1 s, 1 h 23 min 20 s
    (under a minute, tenths of a second where there are any)."""
    if seconds < 60 and seconds != int(seconds):
        return f"{seconds:.1f} s"
    rest, parts = round(seconds), []
    for unit, name in ((86_400, "d"), (3600, "h"), (60, "min"), (1, "s")):
        if rest >= unit:
            parts.append(f"{rest // unit} {name}")
            rest %= unit
    return " ".join(parts) or "0 s"


def timeline_svg(timeline: Timeline, ident: str = "timeline") -> str:
    """Stacked bars of grants and denials per bucket."""
    grants = sum(b.grants for b in timeline.buckets)
    denials = sum(b.denials for b in timeline.buckets)
    desc = (
        f"{grants} grants and {denials} denials in {len(timeline.buckets)} buckets of "
        f"{duration(timeline.bucket_seconds)}"
    )
    height = 240
    svg = _svg(ident, "Grants and denials over time", desc, WIDTH, height)
    if not timeline.buckets:
        _label(svg, WIDTH / 2, height / 2, "nothing in the period", anchor="middle")
        return _serialize(svg)
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, height - _TOP - _BOTTOM
    top = max(1, *(b.grants + b.denials for b in timeline.buckets))
    _y_axis(svg, top, plot_h)
    step, floor = plot_w / len(timeline.buckets), _TOP + plot_h
    for index, bucket in enumerate(timeline.buckets):
        group = ET.SubElement(svg, "g")
        label = _bucket_label(bucket.start, timeline.bucket_seconds)
        _tip(group, f"{label}: {bucket.grants} grants, {bucket.denials} denials")
        bar_w = min(max(step * 0.8, 1.0), _MAX_BAR)
        x = _LEFT + index * step + (step - bar_w) / 2
        grant_h, denial_h = bucket.grants * plot_h / top, bucket.denials * plot_h / top
        _rect(group, (x, floor - grant_h, bar_w, grant_h), GRANT)
        _rect(group, (x, floor - grant_h - denial_h, bar_w, denial_h), DENIAL)
    for index in _tick_indexes(len(timeline.buckets)):
        x = _LEFT + (index + 0.5) * step
        label = _bucket_label(timeline.buckets[index].start, timeline.bucket_seconds)
        _label(svg, x, height - _BOTTOM + 16, label, anchor="middle")
    _legend(svg, (("grants", GRANT), ("denials", DENIAL)))
    return _serialize(svg)


def ttl_svg(rows: tuple[TtlRow, ...], ident: str = "ttl") -> str:
    """Per role, each requested TTL (dot area by how many) against the role's cap (line),
    on a logarithmic time axis."""
    height = _TOP + _BOTTOM + _TTL_ROW * max(len(rows), 1)
    above = sum(r.above_cap for r in rows)
    desc = f"{sum(r.requests for r in rows)} requests over {len(rows)} roles, {above} above cap"
    svg = _svg(ident, "Requested TTL against the role's cap", desc, WIDTH, height)
    if not rows:
        _label(svg, WIDTH / 2, height / 2, "no requests in the period", anchor="middle")
        return _serialize(svg)
    highest = max(max(r.max_seconds, r.cap or 0) for r in rows)
    axis = _LogAxis(_TTL_LABEL, WIDTH - _RIGHT, max(highest * 1.5, 60))
    biggest = max(count for r in rows for _, count in r.values)
    for index, row in enumerate(rows):
        _ttl_row(svg, row, axis, _TOP + index * _TTL_ROW + _TTL_ROW / 2, biggest)
    for seconds, name in _TTL_TICKS:
        if seconds <= axis.upper:
            x = axis.x(seconds)
            _line(svg, (x, _TOP, x, height - _BOTTOM), "#e0e0e0")
            _label(svg, x, height - _BOTTOM + 16, name, anchor="middle")
    _legend(svg, (("within cap", WITHIN), ("above cap", DENIAL), ("cap", CAP)))
    return _serialize(svg)


def _ttl_row(svg: ET.Element, row: TtlRow, axis: _LogAxis, y: float, biggest: int) -> None:
    name = row.role + (" (break-glass)" if row.break_glass else "")
    _label(svg, _TTL_LABEL - 8, y + 4, _clip(name, 28), anchor="end")
    for ttl, count in row.values:
        colour = UNKNOWN if row.cap is None else (DENIAL if ttl > row.cap else WITHIN)
        dot = ET.SubElement(
            svg,
            "circle",
            cx=_n(axis.x(ttl)),
            cy=_n(y),
            r=_n(2 + 7 * math.sqrt(count / biggest)),
            fill=colour,
            opacity="0.7",
        )
        _tip(dot, f"{name}: {count} requests of {duration(ttl)}")
    if row.cap is not None:
        x = axis.x(row.cap)
        cap = _line(svg, (x, y - _TTL_ROW / 2 + 3, x, y + _TTL_ROW / 2 - 3), CAP, width=2)
        _tip(cap, f"{name}: cap {duration(row.cap)}")


def issue_svg(issue: TimeToIssue, ident: str = "time-to-issue") -> str:
    """One row of bars per kind of approval, each scaled to its own largest bin (policy
    grants outnumber approved ones by far): how many grants took each span of time from
    request to issuance, the number above each bar."""
    total = sum(d.count for d in issue.distributions)
    desc = f"{total} grants by time from request to issuance, per kind: " + ", ".join(
        f"{kind} {d.count}" for kind, d in zip(issue.kinds, issue.distributions, strict=True)
    )
    height = _TOP + _BOTTOM + _ISSUE_ROW * len(issue.kinds)
    svg = _svg(ident, "Time from request to issuance", desc, WIDTH, height)
    step = (WIDTH - _ISSUE_LABEL - _RIGHT) / max(len(issue.histogram), 1)
    for k, kind in enumerate(issue.kinds):
        _issue_row(svg, issue, k, _TOP + (k + 1) * _ISSUE_ROW - 6, step)
        _label(svg, _ISSUE_LABEL - 8, _TOP + k * _ISSUE_ROW + _ISSUE_ROW / 2 + 4, kind, "end")
    for index, hbin in enumerate(issue.histogram):
        x = _ISSUE_LABEL + (index + 0.5) * step
        _label(svg, x, height - _BOTTOM + 16, hbin.label, anchor="middle")
    return _serialize(svg)


def _issue_row(svg: ET.Element, issue: TimeToIssue, k: int, floor: float, step: float) -> None:
    kind, colour = issue.kinds[k], KIND_COLOURS[k % len(KIND_COLOURS)]
    top = max(1, *(hbin.counts[k] for hbin in issue.histogram))
    room = _ISSUE_ROW - 20
    _line(svg, (_ISSUE_LABEL, floor, WIDTH - _RIGHT, floor), "#bdbdbd")
    for index, hbin in enumerate(issue.histogram):
        count = hbin.counts[k]
        if not count:
            continue
        bar_h, x = max(count * room / top, 1.0), _ISSUE_LABEL + index * step + step * 0.15
        bar = _rect(svg, (x, floor - bar_h, step * 0.7, bar_h), colour)
        _tip(bar, f"{kind}, {hbin.label}: {count} grants")
        _label(svg, x + step * 0.35, floor - bar_h - 3, str(count), anchor="middle")


class _LogAxis:
    """Seconds to x on a log10 scale from 1 s to ``upper``."""

    def __init__(self, left: float, right: float, upper: float) -> None:
        self.left, self.right, self.upper = left, right, upper

    def x(self, seconds: float) -> float:
        share = math.log10(max(seconds, 1)) / math.log10(self.upper)
        return self.left + min(share, 1.0) * (self.right - self.left)


def _svg(ident: str, title: str, desc: str, width: int, height: int) -> ET.Element:
    svg = ET.Element(
        "svg",
        {
            "xmlns": SVG_NS,
            "width": str(width),
            "height": str(height),
            "viewBox": f"0 0 {width} {height}",
            "role": "img",
            "aria-labelledby": f"{ident}-title {ident}-desc",
            "font-family": "sans-serif",
            "font-size": "11",
        },
    )
    ET.SubElement(svg, "title", id=f"{ident}-title").text = _xml_text(title)
    ET.SubElement(svg, "desc", id=f"{ident}-desc").text = _xml_text(desc)
    return svg


def _y_axis(svg: ET.Element, top: int, plot_h: float) -> None:
    for value in sorted({0, top // 2, top}):
        y = _TOP + plot_h - value * plot_h / top
        _line(svg, (_LEFT, y, WIDTH - _RIGHT, y), "#e0e0e0")
        _label(svg, _LEFT - 6, y + 4, str(value), anchor="end")


def _legend(svg: ET.Element, entries: tuple[tuple[str, str], ...]) -> None:
    x = _LEFT
    for name, colour in entries:
        _rect(svg, (x, 8, 10, 10), colour)
        _label(svg, x + 14, 17, name)
        x += 24 + 7 * len(name)


def _tick_indexes(count: int, most: int = 6) -> list[int]:
    if count <= most:
        return list(range(count))
    return sorted({round(i * (count - 1) / (most - 1)) for i in range(most)})


def _bucket_label(start: str, width: int) -> str:
    """The start of a bucket as much as its width needs: 10:42:05, 10:42, 11-23 10h,
    2026-11-23."""
    date, time = start[:10], start[11:16]
    if width < 60:
        return start[11:19]
    if width < 3600:
        return time
    if width < 86_400:
        return f"{date[5:]} {time[:2]}h"
    return date


def _rect(parent: ET.Element, box: tuple[float, float, float, float], fill: str) -> ET.Element:
    """A rectangle at (x, y) of (width, height)."""
    x, y, w, h = box
    attrs = {"x": _n(x), "y": _n(y), "width": _n(max(w, 0)), "height": _n(max(h, 0))}
    return ET.SubElement(parent, "rect", {**attrs, "fill": fill})


def _line(
    parent: ET.Element, ends: tuple[float, float, float, float], colour: str, width: int = 1
) -> ET.Element:
    """A line from (x1, y1) to (x2, y2)."""
    x1, y1, x2, y2 = ends
    attrs = {"x1": _n(x1), "y1": _n(y1), "x2": _n(x2), "y2": _n(y2)}
    return ET.SubElement(parent, "line", {**attrs, "stroke": colour, "stroke-width": str(width)})


def _label(parent: ET.Element, x: float, y: float, text: str, anchor: str = "start") -> None:
    attrs = {"x": _n(x), "y": _n(y), "text-anchor": anchor}
    ET.SubElement(parent, "text", attrs).text = _xml_text(text)


def _tip(parent: ET.Element, text: str) -> None:
    ET.SubElement(parent, "title").text = _xml_text(text)


def _xml_text(text: str) -> str:
    """``text`` with the characters XML 1.0 forbids (controls, lone surrogates) replaced:
    record strings may hold any of them, and ElementTree would write them as they are."""
    return _NOT_XML.sub("\ufffd", text)


def _clip(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _serialize(svg: ET.Element) -> str:
    return ET.tostring(svg, encoding="unicode")
