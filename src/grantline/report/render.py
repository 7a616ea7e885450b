"""The report as one self-contained HTML page and its JSON twin, from the same data.

The page is rendered from the JSON data itself, so the two always carry the same numbers.
Jinja2 escapes everything (autoescape on): record strings are attacker-influenced. The plots
are SVG built by ``plots`` (escaped there). A Content-Security-Policy in the page allows no
script and no fetch, so even an escaping bug could not run code or call out.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from grantline.report.build import Report, as_json
from grantline.report.plots import duration, issue_svg, timeline_svg, ttl_svg

_NONE = "\u2013"  # an en dash: no value


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("grantline.report", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _number
    env.filters["duration"] = duration
    env.filters["ms"] = _millis
    return env


def render_html(report: Report) -> str:
    """The page."""
    plots = {
        "timeline": _svg(timeline_svg(report.figures.timeline)),
        "ttl": _svg(ttl_svg(report.figures.ttl)),
        "issue": _svg(issue_svg(report.figures.time_to_issue)),
    }
    return _environment().get_template("report.html").render(r=as_json(report), plots=plots)


def _svg(svg: str) -> Markup:
    # ElementTree built the SVG and escaped every text and attribute value in it.
    return Markup(svg)  # noqa: S704


def render_json(report: Report) -> str:
    return json.dumps(as_json(report), indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def json_path_of(html: Path) -> Path:
    """Where the JSON twin of ``html`` goes: beside it, ``.json`` for its suffix."""
    return html.with_suffix(".json")


def write_report(report: Report, html: Path) -> Path:
    """Write the page to ``html`` and the JSON to ``json_path_of(html)``, each whole or not
    at all; the JSON path. Raises OSError."""
    target = json_path_of(html)
    _write_whole(target, render_json(report))
    _write_whole(html, render_html(report))
    return target


def _write_whole(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def _number(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else _NONE


def _millis(value: Any) -> str:
    if not isinstance(value, int):
        return _NONE
    return f"{value:,} ms" if value < 10_000 else duration(value / 1000)
