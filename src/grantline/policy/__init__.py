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
from grantline.policy.embedded import ENGINE_ERROR, ENTRYPOINT, EmbeddedRegoEngine
from grantline.policy.engine import (
    PolicyEngine,
    canonical_input,
    decision_problem,
    input_digest,
    parse_decision,
)
from grantline.policy.index import build_index

__all__ = [
    "ENGINE_ERROR",
    "ENTRYPOINT",
    "CaseResult",
    "DecisionCase",
    "EmbeddedRegoEngine",
    "PolicyBundle",
    "PolicyEngine",
    "build_index",
    "canonical_input",
    "decision_problem",
    "input_digest",
    "load_cases",
    "manifest_digest",
    "parse_decision",
    "run_cases",
    "run_policy_tests",
    "stat_fingerprint",
    "summarize",
]
