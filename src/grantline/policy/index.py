"""The lookup index that the policy reads as ``data.grantline_index``, built from its config."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from grantline.domain.errors import ConfigError
from grantline.domain.models import CredentialType

INDEX_KEY = "grantline_index"
CONFIG_KEY = "grantline"
# Characters that make a subject a pattern for Rego's glob.match ("{" opens an alternation).
GLOB_CHARS = frozenset("*?[{")
HEX_DIGITS = "0123456789abcdef"
_CREDENTIAL_TYPES = frozenset(t.value for t in CredentialType)


def with_index(
    data: Mapping[str, Any], *, stored_form: Callable[[str], str] = str
) -> dict[str, Any]:
    """``data`` plus its index under ``grantline_index``. Raises :class:`ConfigError`."""
    if INDEX_KEY in data:
        raise ConfigError(f"data.{INDEX_KEY} is reserved for the index the engine derives")
    return {**data, INDEX_KEY: build_index(data, stored_form=stored_form)}


def build_index(
    data: Mapping[str, Any], *, stored_form: Callable[[str], str] = str
) -> dict[str, Any]:
    """The index of ``data.grantline``; empty when there is none. Raises :class:`ConfigError`.

    rego-cpp 1.5 finds an object key by scanning (about 0.7 us a key, so 0.7 ms for a key
    among a thousand), while list indexing is O(1). So each table is a hash table of 16 x 16
    cells, nested lists of small objects: a key lives in the cell ``[d0][d1]``, where d0 and
    d1 are the values of the first two hex digits of its SHA-256, which the policy finds
    with ``crypto.sha256``, ``substring`` and ``indexof`` (rego-cpp's ``%`` is wrong, so no
    arithmetic). A decision then costs about the same with ten keys or thousands. Building
    the index checks the configuration, so a malformed one is refused at load time.

    Keyed by role: ``roles`` (its configuration), ``sod_conflicts`` (the sorted roles it may
    not be held with; pairs count both ways) and ``glob_bindings`` (the sorted subject
    patterns bound to it); keyed by exact subject: ``bindings_by_subject`` (its sorted
    roles) and ``memberships`` (the sorted groups it belongs to); keyed by group:
    ``groups`` (its sorted members). Each is a hash table (module docstring);
    ``stored_form`` maps a key to the string the engine hashes (rego-cpp hashes strings in
    their JSON-escaped form).
    """
    config = data.get(CONFIG_KEY, {})
    _require(isinstance(config, dict), f"data.{CONFIG_KEY} must be an object")
    roles = config.get("roles", {})
    check_roles(roles)
    members = check_groups(config.get("groups", {}))
    exact, globs = _index_bindings(config.get("bindings", []))
    return {
        "roles": hash_table(roles, stored_form),
        "bindings_by_subject": hash_table(exact, stored_form),
        "glob_bindings": hash_table(globs, stored_form),
        "sod_conflicts": hash_table(_index_sod(config.get("sod", [])), stored_form),
        "groups": hash_table(members, stored_form),
        "memberships": hash_table(_index_memberships(members), stored_form),
    }


def cell_of(stored_key: str) -> tuple[int, int]:
    """The cell of a key, given in the form the engine stores it."""
    digest = hashlib.sha256(stored_key.encode("utf-8")).hexdigest()
    return HEX_DIGITS.index(digest[0]), HEX_DIGITS.index(digest[1])


def hash_table(
    entries: Mapping[str, Any], stored_form: Callable[[str], str] = str
) -> list[list[dict[str, Any]]]:
    """``entries`` spread over 16 x 16 cells, each key in its :func:`cell_of` cell."""
    table: list[list[dict[str, Any]]] = [[{} for _ in HEX_DIGITS] for _ in HEX_DIGITS]
    for key in sorted(entries):
        first, second = cell_of(stored_form(key))
        table[first][second][key] = entries[key]
    return table


def lookup(
    index: Mapping[str, Any], name: str, key: str, stored_form: Callable[[str], str] = str
) -> Any:
    """``key`` in the index table ``name``, or None: the policy's lookup, for tests and tools."""
    first, second = cell_of(stored_form(key))
    return index[name][first][second].get(key)


def check_roles(roles: Any) -> None:
    """Refuse role definitions the policy could not read. Raises :class:`ConfigError`."""
    _require(isinstance(roles, dict), "data.grantline.roles must be an object")
    for name, role in roles.items():
        where = f"data.grantline.roles[{name!r}]"
        _require(isinstance(role, dict), f"{where} must be an object")
        cap = role.get("max_ttl_seconds")
        _require(
            _whole(cap, 1),
            f"{where}.max_ttl_seconds must be a whole number of seconds, at least 1",
        )
        _require(_non_empty_strings(role.get("targets")), f"{where}.targets must list targets")
        types = role.get("credential_types", ["jwt"])
        _require(
            _non_empty_strings(types) and set(types) <= _CREDENTIAL_TYPES,
            f"{where}.credential_types must list some of {sorted(_CREDENTIAL_TYPES)}",
        )
        _check_vault(role.get("vault"), types, where)
        # Present means checked, null included: the policy tells a block from its absence.
        if "approval" in role:
            _check_approval(role["approval"], where)
        if "break_glass" in role:
            _check_break_glass(role["break_glass"], cap, where)
        _require(
            isinstance(role.get("human_only", False), bool),
            f"{where}.human_only must be true or false",
        )
        if "scope" in role:
            _check_scope(role["scope"], where)


def _check_scope(scope: Any, where: str) -> None:
    """A role's declared scope of use: ``{"operations": [...], "resources": [glob, ...]}``,
    either list optional (docs/usage.md)."""
    what = f"{where}.scope"
    _require(isinstance(scope, dict), f"{what} must be an object")
    unknown = set(scope) - {"operations", "resources"}
    _require(not unknown, f"{what} has unknown members {sorted(unknown)}")
    for member in ("operations", "resources"):
        if member in scope:
            _require(
                _non_empty_strings(scope[member]),
                f"{what}.{member} must be a list of non-empty strings",
            )


def check_groups(groups: Any) -> dict[str, list[str]]:
    """``data.grantline.groups`` with each group's members sorted, once checked.

    Raises :class:`ConfigError` unless it is an object of lists of non-empty strings.
    """
    _require(isinstance(groups, dict), "data.grantline.groups must be an object")
    for name, members in groups.items():
        _require(
            _strings(members),
            f"data.grantline.groups[{name!r}] must be a list of subjects (non-empty strings)",
        )
    return {name: sorted(set(members)) for name, members in groups.items()}


def _check_approval(approval: Any, where: str) -> None:
    """A role's approval block: ``{"all_of": [{"group": name, "count": n >= 1}, ...]}``."""
    what = f"{where}.approval"
    _require(isinstance(approval, dict), f"{what} must be an object")
    factors = approval.get("all_of")
    _require(
        isinstance(factors, list) and len(factors) > 0,
        f"{what}.all_of must be a non-empty list of {{group, count}} factors",
    )
    seen: set[str] = set()
    for position, factor in enumerate(factors):
        at = f"{what}.all_of[{position}]"
        _require(isinstance(factor, dict), f"{at} must be an object with a group and a count")
        group = factor.get("group")
        _require(isinstance(group, str) and group != "", f"{at}.group must be a group name")
        _require(_whole(factor.get("count"), 1), f"{at}.count must be a whole number, at least 1")
        # The approval entrypoint and the broker name factors by their group, so a group
        # appears once; one factor with a higher count says the same thing unambiguously.
        _require(group not in seen, f"{at} names group {group!r} again; raise its count instead")
        seen.add(group)


def _check_break_glass(block: Any, role_cap: int, where: str) -> None:
    """A role's break_glass block: ``{"max_ttl_seconds": n}``, n between 1 and the role's cap."""
    what = f"{where}.break_glass"
    _require(isinstance(block, dict), f"{what} must be an object")
    cap = block.get("max_ttl_seconds")
    _require(
        _whole(cap, 1), f"{what}.max_ttl_seconds must be a whole number of seconds, at least 1"
    )
    _require(
        cap <= role_cap,
        f"{what}.max_ttl_seconds ({cap}) must not exceed the role's max_ttl_seconds ({role_cap})",
    )


def _check_vault(vault: Any, types: list[str], where: str) -> None:
    """The shape of a role's vault block (issuers/vault/role.py). A role may have none: the
    decision can name its Vault mapping instead, and minting fails clearly if neither does."""
    if vault is None:
        return
    _require(isinstance(vault, dict), f"{where}.vault must be an object")
    _require(
        _non_empty_strings(vault.get("policies")) and "root" not in vault["policies"],
        f"{where}.vault.policies must list Vault policies (never root)",
    )
    for key in ("secret_path", "pki_mount", "pki_role"):
        value = vault.get(key)
        _require(
            value is None or (isinstance(value, str) and value.strip("/") != ""),
            f"{where}.vault.{key} must be a non-empty string",
        )
    if "vault_secret" in types:
        _require(vault.get("secret_path") is not None, f"{where}.vault needs a secret_path")
    if "x509" in types:
        _require(vault.get("pki_role") is not None, f"{where}.vault needs a pki_role")


def _index_bindings(bindings: Any) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Exact subject -> sorted roles, and role -> sorted subject patterns bound to it."""
    _require(isinstance(bindings, list), "data.grantline.bindings must be a list")
    roles_of: defaultdict[str, set[str]] = defaultdict(set)
    patterns_of: defaultdict[str, set[str]] = defaultdict(set)
    for position, binding in enumerate(bindings):
        where = f"data.grantline.bindings[{position}]"
        _require(isinstance(binding, dict), f"{where} must be an object")
        subject = binding.get("subject")
        _require(isinstance(subject, str) and subject != "", f"{where}.subject must be a string")
        roles = binding.get("roles")
        _require(_strings(roles), f"{where}.roles must be a list of role names")
        if GLOB_CHARS & set(subject):
            for role in roles:
                patterns_of[role].add(subject)
        else:
            roles_of[subject].update(roles)
    exact = {subject: sorted(roles) for subject, roles in roles_of.items()}
    return exact, {role: sorted(patterns) for role, patterns in patterns_of.items()}


def _index_sod(pairs: Any) -> dict[str, list[str]]:
    _require(isinstance(pairs, list), "data.grantline.sod must be a list of role pairs")
    conflicts: defaultdict[str, set[str]] = defaultdict(set)
    for position, pair in enumerate(pairs):
        _require(
            _non_empty_strings(pair) and len(pair) == 2,
            f"data.grantline.sod[{position}] must be a pair of role names",
        )
        first, second = pair
        conflicts[first].add(second)
        conflicts[second].add(first)
    return {role: sorted(others) for role, others in conflicts.items()}


def _index_memberships(members: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """Subject -> the sorted groups it is a member of."""
    groups_of: defaultdict[str, set[str]] = defaultdict(set)
    for group, subjects in members.items():
        for subject in subjects:
            groups_of[subject].add(group)
    return {subject: sorted(groups) for subject, groups in groups_of.items()}


def _whole(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def _non_empty_strings(value: Any) -> bool:
    return _strings(value) and len(value) > 0


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)
