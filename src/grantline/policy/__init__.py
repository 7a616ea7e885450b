"""Policy: the engine port, the embedded Rego engine, policy bundles and table-driven cases."""

from grantline.policy.bundle import PolicyBundle, manifest_digest, stat_fingerprint
from grantline.policy.cases import (
    CaseResult,
    DecisionCase,
    load_cases,
    run_cases,
    run_policy_tests,
    summarize,
)
from grantline.policy.embedded import (
    APPROVAL_ENTRYPOINT,
    ENGINE_ERROR,
    ENTRYPOINT,
    EmbeddedRegoEngine,
)
from grantline.policy.engine import (
    NO_APPROVAL_RULE,
    PolicyEngine,
    approval_problem,
    canonical_input,
    decision_problem,
    input_digest,
    parse_approval,
    parse_decision,
)
from grantline.policy.index import build_index

__all__ = [
    "APPROVAL_ENTRYPOINT",
    "ENGINE_ERROR",
    "ENTRYPOINT",
    "NO_APPROVAL_RULE",
    "CaseResult",
    "DecisionCase",
    "EmbeddedRegoEngine",
    "PolicyBundle",
    "PolicyEngine",
    "approval_problem",
    "build_index",
    "canonical_input",
    "decision_problem",
    "input_digest",
    "load_cases",
    "manifest_digest",
    "parse_approval",
    "parse_decision",
    "run_cases",
    "run_policy_tests",
    "stat_fingerprint",
    "summarize",
]
