"""How the lineage page shows a record: which fields of each kind it picks, under which label,
and how a value becomes text.

The browser recomputes every shown fact from the verified signed bytes (``static/lineage.js``)
and compares it with the page, so both sides must agree exactly. This module is the one place
the tables live: the broker writes :func:`spec_document` into the script it serves, and the
script implements the same few formatters. Values are made plain text that survives HTML
parsing unchanged: control, bidirectional and invisible characters are shown as ``\\uXXXX``.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_TEXT = 2000  # characters of one value shown; the signed line in full is in the details
MAX_FACTS = 200  # flattened members of one record's details
MAX_DEPTH = 8
ARROW = " \u2192 "
# Shown as \uXXXX: C0 and C1 controls (an HTML parser drops NUL and turns CR into LF), bidi
# overrides and isolates (they reorder what is shown), zero-width and other invisible
# characters, and lone surrogates (not text at all).
HIDDEN = (
    (0x00, 0x1F),
    (0x7F, 0x9F),
    (0xAD, 0xAD),
    (0x61C, 0x61C),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x2028, 0x202E),
    (0x2060, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0xD800, 0xDFFF),
)
_HIDDEN = re.compile("[" + "".join(f"\\u{low:04x}-\\u{high:04x}" for low, high in HIDDEN) + "]")

# (label, path in ``data``, format); a path starting with "=" is a constant (who evaluates a
# policy: the policy), which the page attributes to the record's event.
Spec = tuple[tuple[str, str, str], ...]

TITLES = {
    "requested": "Requested",
    "evaluated": "Policy evaluated",
    "denied": "Denied",
    "approval_given": "Approval given",
    "approval_refused": "Approval refused",
    "approved": "Approved",
    "rejected": "Rejected",
    "issued": "Credential issued",
    "used": "Used",
    "outcome": "Outcome reported",
    "collected": "Credential collected",
    "reviewed": "Reviewed",
    "revoked": "Revoked",
    "revocation_failed": "Revocation failed",
    "expired": "Expired",
    "failed": "Failed",
    "notification_failed": "Notification failed",
    "reconciled": "Reconciled",
}

_APPROVER: Spec = (
    ("approver", "approver.subject", "text"),
    ("approver issuer", "approver.issuer", "text"),
)
_BY: Spec = (("by", "by", "text"),)
_BY_SOURCE: Spec = (("by", "by", "text"), ("source", "source", "text"))

WHO: dict[str, Spec] = {
    "requested": (
        ("for", "identity.subject", "text"),
        ("issuer", "identity.issuer", "text"),
        ("agent", "actor.subject", "text"),
        ("actor chain", "actor.chain", "chain"),
    ),
    "evaluated": (("by", "=policy", "text"),),
    "denied": (("by", "=policy", "text"),),
    "approval_given": _APPROVER,
    "approval_refused": _APPROVER,
    "rejected": _APPROVER,
    "approved": (("by", "by", "text"), ("approvers", "approvers", "text")),
    "issued": (("actor", "act", "chain"),),
    "collected": _BY,
    "reviewed": _BY,
    "revoked": _BY_SOURCE,
    "revocation_failed": _BY_SOURCE,
    "used": (("reported by", "reporters", "text"),),
    "outcome": _BY,
}

WHAT: dict[str, Spec] = {
    "requested": (
        ("target", "request.target", "text"),
        ("role", "request.role", "text"),
        ("TTL", "request.ttl_seconds", "seconds"),
        ("credential type", "request.credential_type", "text"),
        ("purpose", "request.purpose", "text"),
        ("ticket", "request.ticket", "text"),
        ("break-glass justification", "request.justification", "text"),
        ("agent goal", "request.agent.goal", "text"),
        ("agent tool", "request.agent.tool", "text"),
        ("prompt digest", "request.agent.prompt_sha256", "text"),
        ("key thumbprint", "request.public_key_thumbprint", "text"),
    ),
    "approval_given": (("reason", "reason", "text"), ("counts for", "groups", "text")),
    "approval_refused": (("action", "action", "text"), ("reason", "reason", "text")),
    "rejected": (("reason", "reason", "text"),),
    "approved": (
        ("requirement", "requirement", "requirement"),
        ("rule", "rule", "text"),
        ("justification", "justification", "text"),
        ("review due", "review_due_at", "text"),
    ),
    "issued": (
        ("credential type", "credential_type", "text"),
        ("fingerprint", "fingerprint", "text"),
        ("issued at", "issued_at", "text"),
        ("expires at", "expires_at", "text"),
        ("handle", "handle", "text"),
        ("bound to key", "cnf.jkt", "text"),
    ),
    "used": (
        ("uses", "count", "text"),
        ("first use", "first_use", "text"),
        ("last use", "last_use", "text"),
        ("operations", "operations", "text"),
        ("outcomes", "outcomes", "text"),
        ("resources", "resources", "text"),
        ("after the grant ended", "after_end", "text"),
    ),
    "outcome": (
        ("action", "action", "text"),
        ("result", "result", "text"),
        ("changed", "changed", "text"),
        ("summary", "summary", "text"),
    ),
    "reviewed": (("reason", "reason", "text"),),
    "revoked": (("reason", "reason", "text"),),
    "revocation_failed": (("reason", "reason", "text"), ("error", "error.message", "text")),
    "expired": (("phase", "phase", "text"), ("deadline", "deadline", "text")),
    "failed": (("code", "code", "text"), ("message", "message", "text")),
    "notification_failed": (
        ("about", "event", "text"),
        ("attempts", "attempts", "text"),
        ("error", "error", "text"),
    ),
    "reconciled": (("finding", "finding", "text"), ("action", "action", "text")),
}

# The records that state a policy decision under ``data.decision``, and what else it shows.
DECIDED = ("evaluated", "approval_given", "approval_refused", "rejected")
DECISION_FACTS: Spec = (
    ("approval required", "decision.require_approval", "text"),
    ("rule", "decision.rule", "text"),
    ("policy", "policy_digest", "text"),
    ("policy", "decision.policy_digest", "text"),
    ("input digest", "input_digest", "text"),
)
APPROVED_BY_POLICY: Spec = (("rule", "rule", "text"), ("policy", "policy_digest", "text"))


def spec_document() -> dict[str, Any]:
    """Everything the page's script needs to recompute what the page shows, as JSON."""
    return {
        "titles": TITLES,
        "who": WHO,
        "what": WHAT,
        "decided": DECIDED,
        "decision_facts": DECISION_FACTS,
        "approved_by_policy": APPROVED_BY_POLICY,
        "max_text": MAX_TEXT,
        "max_facts": MAX_FACTS,
        "max_depth": MAX_DEPTH,
        "arrow": ARROW,
        "hidden": HIDDEN,
    }


def lookup(data: Any, path: str) -> Any:
    """The value at a dotted ``path`` in nested objects, or None where there is none."""
    for name in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(name)
    return data


def is_empty(value: Any) -> bool:
    """Nothing to show: missing, null, or an empty string, list or object."""
    return value is None or (isinstance(value, str | list | dict) and not value)


def shown(text: str) -> str:
    """``text`` as the page shows it: hidden characters made visible, cut at ``MAX_TEXT``."""
    text = _HIDDEN.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "\u2026"


def text_of(value: Any) -> str:
    """A record value as one line of text."""
    return shown(plain(value))


def plain(value: Any) -> str:
    """A value as text: strings as they are, flat lists and maps readably, the rest as JSON.

    Object members are taken in code point order, here and in JSON, as the script does.
    """
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, list) and all(_scalar(item) for item in value):
        return ", ".join(str(item) for item in value)
    if isinstance(value, dict) and all(isinstance(item, str | list) for item in value.values()):
        return "; ".join(f"{name}: {plain(value[name])}" for name in sorted(value))
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _scalar(item: Any) -> bool:
    return isinstance(item, str) or (isinstance(item, int) and not isinstance(item, bool))


def chain(value: Any) -> str:
    """An actor chain (``["agent", "sub-agent"]``) or RFC 8693 ``act`` claim, outermost first."""
    if isinstance(value, list):
        return shown(ARROW.join(plain(item) for item in value))
    subjects: list[str] = []
    while isinstance(value, dict) and len(subjects) < MAX_DEPTH:
        subjects.append(plain(value.get("sub")))
        value = value.get("act")
    return shown(ARROW.join(subjects))


def requirement(value: Any) -> str:
    """``{"all_of": [{"group": "security", "count": 1}]}`` as ``1 of security``."""
    factors = value.get("all_of") if isinstance(value, dict) else None
    if not isinstance(factors, list) or not all(isinstance(f, dict) for f in factors):
        return text_of(value)
    return shown(", ".join(f"{plain(f.get('count'))} of {plain(f.get('group'))}" for f in factors))


def seconds(value: Any) -> str:
    return f"{value} s" if _scalar(value) and not isinstance(value, str) else text_of(value)


FORMATS = {"text": text_of, "chain": chain, "requirement": requirement, "seconds": seconds}


def title_of(event: str) -> str:
    """The heading of a record: its kind's name, or the kind itself for one not known here."""
    if event in TITLES:
        return TITLES[event]
    name = event.replace("_", " ")
    if name[:1].isascii() and name[:1].islower():
        name = name[0].upper() + name[1:]
    return shown(name) or "Unreadable record"
