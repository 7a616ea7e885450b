"""An access request's outcome as metric labels: outcome, deciding rule, kind of reason.

Reasons are a policy's free text and name subjects, roles and targets: they never become a
label. A decision may name its kind in ``reason_code`` (a short identifier); otherwise the
first reason's wording is matched against the few kinds of denial a policy gives.
"""

from __future__ import annotations

from collections.abc import Sequence

from grantline.domain.errors import GrantlineError
from grantline.domain.models import Decision, Status
from grantline.observe.metrics import LabelValues

NO_RULE = "none"

# Policy-supplied names are capped: a policy that invents a rule name per request gets one
# series per name up to the cap, then ``other``.
_rules = LabelValues(limit=32)
_codes = LabelValues(limit=64)

# The kinds of denial of the shipped policy (and of the broker's own fail-closed routing).
# Each is told by the wording around the names, never by a name: a subject may well be
# called ``agents/ttl-bot``. First match wins: (kind, prefixes, phrases).
_KINDS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("no_decision", ("policy returned no decision",), ()),
    ("malformed_decision", ("policy decision is malformed",), ()),
    ("unexplained", ("policy denied the request without giving a reason",), ()),
    ("ttl", ("ttl_seconds ",), (" exceeds the cap ", " exceeds the break-glass cap ")),
    ("approval", (), ("requires approval", "no approval rule", "approval policy")),
    ("break_glass", ("request.break_glass ",), (" break-glass access", "accept break-glass")),
    ("separation_of_duties", ("separation of duties",), ()),
    ("delegation", ("agent ", "actor.", "subject_token"), (" granted to an agent",)),
    ("unknown_role", ("unknown role ",), ()),
    ("not_bound", ("subject ",), (" is not bound to role ",)),
    ("target", ("target ", "request.target "), ()),
    ("credential_type", ("credential_type ", "request.credential_type "), ()),
    ("invalid_input", (), (" must be ",)),
    ("not_proven", ("no rule proved",), ()),
)


def outcome_labels(status: Status, decision: Decision) -> tuple[str, str, str]:
    """``(outcome, rule, reason)`` of a request the broker answered."""
    rule = _rules(str(decision.extra.get("rule") or NO_RULE))
    if status is Status.ISSUED:
        kind = "break_glass" if decision.extra.get("break_glass") is True else "allowed"
        return "issued", rule, kind
    if status is Status.PENDING_APPROVAL:
        return "pending_approval", rule, "approval_required"
    if decision.extra.get("engine_error") is True:
        return "denied", rule, "engine_error"
    return "denied", rule, reason_kind(decision)


def failure_labels(exc: BaseException) -> tuple[str, str, str]:
    """``(outcome, rule, reason)`` of a request the broker could not answer."""
    code = exc.code if isinstance(exc, GrantlineError) else "internal_error"
    return "failed", NO_RULE, _codes(code)


def reason_kind(decision: Decision) -> str:
    """The kind of a denial: the decision's own ``reason_code``, else read from its first
    reason, else ``other``."""
    code = decision.extra.get("reason_code")
    if isinstance(code, str) and code:
        return _codes(code)
    return kind_of(decision.reasons)


def kind_of(reasons: Sequence[str]) -> str:
    if not reasons:
        return "unexplained"
    text = reasons[0]
    for kind, prefixes, phrases in _KINDS:
        if text.startswith(prefixes) or any(phrase in text for phrase in phrases):
            return kind
    return "other"
