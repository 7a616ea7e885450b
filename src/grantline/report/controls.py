"""The controls a Grantline log evidences, mapped to the frameworks auditors use.

Data, not logic: each control names the figures of the report that evidence it (paths into
the report's JSON) and the items of each framework it addresses:

- OWASP Non-Human Identities Top 10 (2025), items NHI1:2025 ... NHI10:2025;
- NIST Cybersecurity Framework 2.0 subcategories (PR.AA identity management,
  authentication and access control; PR.PS-04 and DE.CM where the log is the evidence);
  PR.AA-06 (physical access) is not something a credential broker evidences and is left out;
- CSA MAESTRO, the agentic AI threat-modelling framework (Cloud Security Alliance, 2025):
  its layer (or cross-layer) and the threat named there that the control mitigates, in the
  words of CSA's MAESTRO publication (February 2025).

A mapping says the control helps with that item, not that the item is fully met.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

OWASP_NHI: Mapping[str, str] = {
    "NHI1": "Improper Offboarding",
    "NHI2": "Secret Leakage",
    "NHI3": "Vulnerable Third-Party NHI",
    "NHI4": "Insecure Authentication",
    "NHI5": "Overprivileged NHI",
    "NHI6": "Insecure Cloud Deployment Configurations",
    "NHI7": "Long-Lived Secrets",
    "NHI8": "Environment Isolation",
    "NHI9": "NHI Reuse",
    "NHI10": "Human Use of NHI",
}

NIST_CSF: Mapping[str, str] = {
    "PR.AA-01": "Identities and credentials for authorized users, services, and hardware "
    "are managed by the organization",
    "PR.AA-02": "Identities are proofed and bound to credentials based on the context of "
    "interactions",
    "PR.AA-03": "Users, services, and hardware are authenticated",
    "PR.AA-04": "Identity assertions are protected, conveyed, and verified",
    "PR.AA-05": "Access permissions, entitlements, and authorizations are defined in a policy, "
    "managed, enforced, and reviewed, and incorporate the principles of least privilege and "
    "separation of duties",
    "PR.PS-04": "Log records are generated and made available for continuous monitoring",
    "DE.CM-03": "Personnel activity and technology usage are monitored to find potentially "
    "adverse events",
    "DE.CM-09": "Computing hardware and software, runtime environments, and their data are "
    "monitored to find potentially adverse events",
}

MAESTRO_LAYERS: Mapping[str, str] = {
    "L1": "Foundation Models",
    "L2": "Data Operations",
    "L3": "Agent Frameworks",
    "L4": "Deployment and Infrastructure",
    "L5": "Evaluation and Observability",
    "L6": "Security and Compliance",
    "L7": "Agent Ecosystem",
    "CL": "Cross-layer",
}


@dataclass(frozen=True, slots=True)
class Control:
    """One control: what Grantline does, which figures evidence it, what it maps to.

    ``evidence`` pairs the name of a fact of the report (``grants.total``, see
    ``report.build.facts_of``) with a label; each counts records of the log that show the
    control at work, and no record is counted twice within one control, so the lines add up
    to the control's evidence count. ``maestro`` pairs a layer id (``CL`` for
    MAESTRO's cross-layer threats) with the threat named there that the control mitigates.
    """

    id: str
    title: str
    how: str
    evidence: tuple[tuple[str, str], ...]
    owasp_nhi: tuple[str, ...]
    nist_csf: tuple[str, ...]
    maestro: tuple[tuple[str, str], ...]


CONTROLS: tuple[Control, ...] = (
    Control(
        "short-lived",
        "Short-lived credentials under TTL caps",
        "Every credential expires; the policy refuses a TTL above the role's cap.",
        (
            ("grants.total", "credentials issued with an expiry"),
            ("denials.kinds.ttl_cap", "requests refused above the cap"),
        ),
        ("NHI7", "NHI1"),
        ("PR.AA-01", "PR.AA-05"),
        (("L7", "Compromised Agents"), ("L4", "Lateral Movement")),
    ),
    Control(
        "least-privilege",
        "Least privilege by policy, per request",
        "Each request is decided by Rego policy on the caller's bound roles and targets; "
        "the decision and the policy digest are recorded.",
        (
            ("grants.total", "grants within the caller's bound roles and targets"),
            ("denials.kinds.not_bound", "refused: role not bound"),
            ("denials.kinds.unknown_role", "refused: unknown role"),
            ("denials.kinds.target_not_allowed", "refused: target not allowed"),
        ),
        ("NHI5", "NHI8"),
        ("PR.AA-05",),
        (("L7", "Agent Tool Misuse"), ("CL", "Privilege Escalation")),
    ),
    Control(
        "jit-approval",
        "Just-in-time approval with quorum",
        "Sensitive roles wait for approvers from required groups; nobody approves their own "
        "request; the decision is taken again when the quorum is met.",
        (
            ("approvals.approved_by_quorum", "approved by a quorum"),
            ("approvals.rejected", "rejected by an approver"),
            ("approvals.expired_pending", "expired waiting for approvers"),
            ("approvals.refusals", "approvals refused by the approval policy"),
        ),
        ("NHI5",),
        ("PR.AA-05",),
        (("L7", "Agent Goal Manipulation"), ("CL", "Privilege Escalation")),
    ),
    Control(
        "separation-of-duties",
        "Separation of duties",
        "A role is refused while a conflicting one is held; approvers holding a conflicting "
        "role are refused.",
        (("denials.kinds.separation_of_duties", "refused for a conflicting active grant"),),
        ("NHI5",),
        ("PR.AA-05",),
        (("CL", "Privilege Escalation"),),
    ),
    Control(
        "break-glass",
        "Break-glass with after-the-fact review",
        "Emergency access is issued at once under its own cap, marked in every record, and "
        "reviewed by someone else; an overdue review is a finding.",
        (
            ("break_glass.granted", "break-glass grants"),
            ("break_glass.reviewed", "reviewed"),
            ("break_glass.flagged_by_reconciler", "overdue reviews flagged by the reconciler"),
        ),
        ("NHI10",),
        ("PR.AA-05", "DE.CM-03"),
        (("L7", "Repudiation"), ("CL", "Privilege Escalation")),
    ),
    Control(
        "revocation",
        "Revocation and recorded expiry",
        "Grants are revoked at their issuer on demand and their expiry is recorded; the "
        "reconciler finds credentials alive after their end.",
        (
            ("credentials.revoked_before_expiry", "revoked before expiry"),
            ("credentials.expired", "expiries recorded"),
        ),
        ("NHI1", "NHI7"),
        ("PR.AA-01",),
        (("L7", "Compromised Agents"),),
    ),
    Control(
        "tamper-evident-log",
        "Tamper-evident evidence log",
        "Every record is signed and hash-chained, in a Merkle tree under signed checkpoints; "
        "this report verified the export before counting it.",
        (("verification.records_verified", "records verified"),),
        (),
        ("PR.PS-04", "DE.CM-03"),
        (("L5", "Poisoning Observability Data"), ("L7", "Repudiation")),
    ),
    Control(
        "no-secrets-in-evidence",
        "No secret in the evidence",
        "Records keep a credential's fingerprint and revocation handle, never the credential.",
        (("grants.total", "issued records holding a fingerprint only"),),
        ("NHI2",),
        ("PR.AA-01",),
        (("L5", "Data Leakage through Observability"),),
    ),
    Control(
        "authenticated-callers",
        "Authenticated callers, one identity per grant",
        "Each request carries a verified identity token of a trusted issuer; each grant is "
        "minted for one named subject, not a shared account.",
        (("requests.total", "requests from verified identities"),),
        ("NHI4", "NHI9", "NHI10"),
        ("PR.AA-01", "PR.AA-03"),
        (("L7", "Agent Impersonation"),),
    ),
    Control(
        "agent-delegation",
        "Agent delegation provenance",
        "An agent proves whom it acts for with the principal's token; the actor chain is "
        "recorded and the JWT carries an RFC 8693 act claim; an agent never gets more than "
        "its principal, nor a human-only role.",
        (
            ("grants.agent", "grants to agents acting for a principal"),
            ("denials.kinds.human_only", "refused: human-only role asked by an agent"),
        ),
        ("NHI5",),
        ("PR.AA-02", "PR.AA-04"),
        (("L7", "Agent Identity Attack"), ("L7", "Agent Impersonation"), ("L7", "Repudiation")),
    ),
    Control(
        "proof-of-possession",
        "Proof-of-possession binding",
        "A JWT bound to the caller's key (cnf.jkt) is useless to whoever copies it without "
        "the key.",
        (("grants.key_bound", "key-bound credentials"),),
        ("NHI2",),
        ("PR.AA-02", "PR.AA-04"),
        (("L7", "Agent Impersonation"),),
    ),
    Control(
        "reconciliation",
        "Reconciliation with the issuers",
        "The log is compared with what the issuers hold; drift, orphans and missing "
        "issuances are findings, with the action taken.",
        (
            ("reconciler.findings", "reconciler findings"),
            ("reconciler.expired_recorded", "expiries recorded by the reconciler"),
        ),
        ("NHI1", "NHI7"),
        ("DE.CM-09", "PR.PS-04"),
        (("L4", "Lateral Movement"), ("L5", "Evasion of Detection")),
    ),
)


def evidence_of(control: Control, facts: Mapping[str, int]) -> list[tuple[str, int]]:
    """Each evidence line of ``control`` with its number among the report's facts (0 when the
    log holds none)."""
    return [(label, facts.get(name, 0)) for name, label in control.evidence]
