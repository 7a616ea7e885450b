"""The broker's Vault policy against the Vault calls its code makes: each call covered, no more.

The calls are read from the source of the Vault adapter (the only module that talks to
Vault with the broker's own token), so a new call without a policy rule fails here, and a
rule no call needs fails too. Whether OpenBao really grants them is shown by the integration
tests, which run every issuer and the reconciler with a token holding only this policy.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.unit.deploy.deploy_files import DEPLOY, REPO

from grantline.config import Settings
from grantline.issuers.vault import client as vault_client
from grantline.issuers.vault.devserver import broker_policy_hcl

POLICY = DEPLOY / "vault" / "grantline-broker.hcl"
VAULT_PACKAGE = REPO / "src" / "grantline" / "issuers" / "vault"
DEFAULTS = Settings.model_construct()
TRANSIT_KEYS = (DEFAULTS.transit_log_key, DEFAULTS.transit_token_key)

# hvac methods of the broker's session and the request each makes: (path, capability).
# None: Vault serves it without a token (login, health).
HVAC_METHODS: dict[str, tuple[str, str] | None] = {
    "auth.approle.login": None,
    "auth.token.lookup_self": ("auth/token/lookup-self", "read"),
    "auth.token.renew_self": ("auth/token/renew-self", "update"),
    "auth.token.create": (f"auth/token/create/{DEFAULTS.vault_token_role}", "update"),
    "auth.token.lookup_accessor": ("auth/token/lookup-accessor", "update"),
    "auth.token.revoke_accessor": ("auth/token/revoke-accessor", "update"),
    "auth.token.list_accessors": ("auth/token/accessors", "list"),
    "sys.read_health_status": None,
}
# Paths built in the adapter, with the mounts and names of the default configuration.
PATH_TEMPLATES: dict[str, list[str]] = {
    "sys/leases/lookup": ["sys/leases/lookup"],
    "sys/leases/revoke": ["sys/leases/revoke"],
    "{mount}/revoke": ["pki/revoke"],
    "{mount}/cert/{serial}": ["pki/cert/17-2a-9c"],
    "{mount}/keys/{key}": [f"{DEFAULTS.vault_transit_mount}/keys/{k}" for k in TRANSIT_KEYS],
    "{mount}/sign/{key}": [f"{DEFAULTS.vault_transit_mount}/sign/{k}" for k in TRANSIT_KEYS],
    "sys/audit-hash/{device}": [f"sys/audit-hash/{DEFAULTS.vault_audit_device}"],
}
# The PKI engine serves certificates to anyone (they are public): no rule is needed.
UNAUTHENTICATED = {"pki/cert/17-2a-9c"}
# Vault and OpenBao require "sudo" to list token accessors; nothing else gets it.
SUDO_PATHS = {"auth/token/accessors"}
# The only patterns: Transit keys named by the grantline-* convention (renamed without a
# policy change; a key of the wrong type is read, and refused by name, at start-up).
PATTERNS = {"transit/keys/grantline-*", "transit/sign/grantline-*"}


@dataclass(frozen=True)
class Rule:
    path: str
    capabilities: frozenset[str]

    def matches(self, path: str) -> bool:
        pattern = re.escape(self.path).replace(r"\+", "[^/]+")
        if pattern.endswith(r"\*"):
            pattern = pattern[:-2] + ".*"
        return re.fullmatch(pattern, path) is not None


def policy_rules(text: str) -> list[Rule]:
    text = re.sub(r"#[^\n]*", "", text)
    blocks = re.findall(r'path\s+"([^"]+)"\s*\{\s*capabilities\s*=\s*\[([^\]]*)\]\s*\}', text)
    rules = [Rule(path, frozenset(re.findall(r'"([^"]+)"', caps))) for path, caps in blocks]
    assert len(rules) == text.count("path "), "every path block parses"
    return rules


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return "?"


def _template(node: ast.expr) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            str(part.value) if isinstance(part, ast.Constant) else "{" + _dotted(part.value) + "}"
            for part in node.values
            if isinstance(part, ast.Constant | ast.FormattedValue)
        )
    raise AssertionError(f"a Vault path the test cannot read: {ast.dump(node)}")


def broker_calls() -> list[tuple[str, str]]:
    """(path, capability) of every request on the broker's own session (``self._client``),
    whether called there or handed to the thread pool uncalled.

    Requests on other clients (``client = self._hvac(token)``) use a grant token, whose
    policies are the role's, not the broker's.
    """
    tree = ast.parse(Path(vault_client.__file__).read_text())
    inner = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    needed: list[tuple[str, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = _dotted(node.func)
            if name in ("self._client.read", "self._client.write_data"):
                capability = "read" if name.endswith(".read") else "update"
                template = _template(node.args[0])
                assert template in PATH_TEMPLATES, f"new Vault path {template}: add it here"
                needed += [(path, capability) for path in PATH_TEMPLATES[template]]
        elif isinstance(node, ast.Attribute) and id(node) not in inner:
            name = _dotted(node)
            if not name.startswith("self._client."):
                continue
            method = name.removeprefix("self._client.")
            if method in HVAC_METHODS:
                request = HVAC_METHODS[method]
                needed += [request] if request is not None else []
            elif method not in ("read", "write_data", "token"):  # token: set after login
                raise AssertionError(f"the adapter uses hvac's {method}: add it to HVAC_METHODS")
    return needed


def authenticated_calls() -> list[tuple[str, str]]:
    return [(path, cap) for path, cap in broker_calls() if path not in UNAUTHENTICATED]


def test_the_deploy_policy_is_the_one_the_package_ships_and_the_dev_server_loads() -> None:
    assert POLICY.resolve() == (VAULT_PACKAGE / "broker-policy.hcl").resolve()
    assert POLICY.read_text() == broker_policy_hcl()


def test_the_adapter_is_read_and_makes_the_calls_the_broker_is_known_to_make() -> None:
    paths = {path for path, _ in broker_calls()}
    assert {
        "auth/token/create/grantline",
        "auth/token/accessors",
        "sys/leases/revoke",
        "pki/revoke",
        "transit/sign/grantline-log",
    } <= paths


def test_only_the_adapter_talks_to_vault_with_hvac() -> None:
    importing = {
        path.name
        for path in (REPO / "src" / "grantline").rglob("*.py")
        if re.search(r"^\s*(import hvac|from hvac)", path.read_text(), re.MULTILINE)
    }
    # devserver.py uses the root token of a local dev server to prepare it, never the broker's.
    assert importing == {"client.py", "devserver.py"}


@pytest.mark.parametrize(("path", "capability"), sorted(set(authenticated_calls())))
def test_each_vault_call_of_the_broker_is_allowed_by_exactly_one_rule(
    path: str, capability: str
) -> None:
    matching = [rule for rule in policy_rules(POLICY.read_text()) if rule.matches(path)]
    assert len(matching) == 1, f"{path}: rules {[r.path for r in matching]}"
    assert capability in matching[0].capabilities


def test_no_rule_allows_more_than_the_calls_need() -> None:
    needed = authenticated_calls()
    for rule in policy_rules(POLICY.read_text()):
        used = {cap for path, cap in needed if rule.matches(path)}
        assert used, f"{rule.path} is not needed by any call"
        if rule.path in SUDO_PATHS:
            used.add("sudo")
        assert rule.capabilities == used, f"{rule.path}: {sorted(rule.capabilities)}"


def test_no_sudo_beyond_listing_accessors_and_no_patterns_beyond_transit_key_names() -> None:
    for rule in policy_rules(POLICY.read_text()):
        if "sudo" in rule.capabilities:
            assert rule.path in SUDO_PATHS
        assert "root" not in rule.capabilities
        if "*" in rule.path or "+" in rule.path:
            assert rule.path in PATTERNS, f"{rule.path} is a pattern"
        assert not rule.path.startswith(("secret/", "database/", "kv/")), "no secret reads"


def test_the_rule_matcher_reads_vault_globs_as_vault_does() -> None:
    assert Rule("sys/leases/*", frozenset()).matches("sys/leases/revoke/a/b")
    assert Rule("pki/cert/+", frozenset()).matches("pki/cert/01")
    assert not Rule("pki/cert/+", frozenset()).matches("pki/cert/01/x")
    assert not Rule("pki/revoke", frozenset()).matches("pki/revoke-with-key")
