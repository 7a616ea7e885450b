"""How the lineage page turns record values into text: exactly, in a form HTML parsing keeps
as is, and with the tables the browser recomputes it from written into the served script."""

from __future__ import annotations

import json

from grantline.api.ui import pages
from grantline.api.ui.display import (
    MAX_TEXT,
    WHAT,
    WHO,
    plain,
    requirement,
    shown,
    spec_document,
    text_of,
    title_of,
)


def test_characters_html_would_change_or_that_reorder_text_are_shown_escaped() -> None:
    assert shown("a\r\nb\x00c") == "a\\u000d\\u000ab\\u0000c"
    assert shown("pay \u202eevil\u202c now") == "pay \\u202eevil\\u202c now"
    assert shown("zero\u200bwidth\ufeff") == "zero\\u200bwidth\\ufeff"
    assert shown("lone \ud800") == "lone \\ud800"
    assert shown("caf\u00e9 \U0001f600 <b>&") == "caf\u00e9 \U0001f600 <b>&"


def test_long_text_is_cut_by_characters_after_escaping() -> None:
    assert len(shown("x" * (MAX_TEXT + 50))) == MAX_TEXT
    emoji = shown("\U0001f600" * (MAX_TEXT + 1))
    assert len(emoji) == MAX_TEXT
    assert emoji.endswith("\u2026")
    assert shown("\x00" * MAX_TEXT) == ("\\u0000" * MAX_TEXT)[: MAX_TEXT - 1] + "\u2026"


def test_values_become_text_the_same_way_in_any_member_order() -> None:
    assert (
        plain({"security": ["user:sam"], "oncall": ["a", "b"]})
        == "oncall: a, b; security: user:sam"
    )
    assert plain({"10": "x", "9": "y"}) == "10: x; 9: y"  # as strings, not as numbers
    assert plain(["a", 1]) == "a, 1"
    assert plain([True, 1]) == "[true, 1]"  # a boolean is no number here
    assert plain({"b": 1, "a": None}) == '{"a": null, "b": 1}'
    assert text_of(None) == text_of("") == ""
    assert requirement({"all_of": [{"group": "security", "count": 1}]}) == "1 of security"
    assert requirement("any") == "any"


def test_a_record_kind_this_version_does_not_know_is_titled_by_its_name() -> None:
    assert title_of("issued") == "Credential issued"
    assert title_of("renewed_twice") == "Renewed twice"
    assert title_of("Élan") == "Élan"
    assert title_of("constructor") == "Constructor"
    assert title_of("") == "Unreadable record"


def test_the_served_script_holds_the_display_tables() -> None:
    script = pages.static_bytes("display.js").decode()
    assert pages.DISPLAY_MARKER.decode() not in script
    written = script.split("const DISPLAY = ", 1)[1].split(";\n", 1)[0]
    assert json.loads(written) == json.loads(json.dumps(spec_document()))
    assert json.loads(written)["who"]["requested"][0] == ["for", "identity.subject", "text"]
    assert set(WHO) <= set(spec_document()["titles"])
    assert set(WHAT) <= set(spec_document()["titles"])
