"""The derived index keys bindings and SoD pairs, and refuses configuration it cannot use."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from grantline.domain.errors import ConfigError
from grantline.policy import build_index
from grantline.policy.index import cell_of, lookup, with_index

ROLES = {
    "db-read": {"max_ttl_seconds": 3600, "targets": ["postgres://orders-db"]},
    "deployer": {"max_ttl_seconds": 1800, "targets": ["k8s://prod"]},
}


def config(**parts: Any) -> dict[str, Any]:
    return {"grantline": {"roles": ROLES, **parts}}


def cells(table: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """The table's entries, checking each sits in the cell of its key."""
    found = {}
    for first, row in enumerate(table):
        for second, cell in enumerate(row):
            for key, value in cell.items():
                assert cell_of(key) == (first, second), key
                found[key] = value
    return found


def test_every_table_is_16_by_16_cells() -> None:
    index = build_index(config())

    for name in (
        "roles",
        "bindings_by_subject",
        "glob_bindings",
        "sod_conflicts",
        "groups",
        "memberships",
    ):
        assert len(index[name]) == 16
        assert all(len(row) == 16 for row in index[name])


def test_a_key_sits_in_the_cell_of_the_first_two_hex_digits_of_its_sha256() -> None:
    digest = hashlib.sha256(b"user:alice").hexdigest()

    assert cell_of("user:alice") == (int(digest[0], 16), int(digest[1], 16))


def test_roles_are_indexed_with_their_configuration() -> None:
    index = build_index(config())

    assert cells(index["roles"]) == ROLES
    assert lookup(index, "roles", "deployer") == ROLES["deployer"]
    assert lookup(index, "roles", "unknown") is None


def test_exact_bindings_map_each_subject_to_its_sorted_roles() -> None:
    index = build_index(
        config(
            bindings=[
                {"subject": "user:alice", "roles": ["db-read", "deployer"]},
                {"subject": "user:bob", "roles": ["db-read"]},
                {"subject": "user:alice", "roles": ["audit", "db-read"]},
            ]
        )
    )

    assert cells(index["bindings_by_subject"]) == {
        "user:alice": ["audit", "db-read", "deployer"],
        "user:bob": ["db-read"],
    }
    assert cells(index["glob_bindings"]) == {}


@pytest.mark.parametrize("subject", ["spiffe://x/ns/*", "user:?ob", "user:[ab]ob", "u:{a,b}"])
def test_subjects_with_glob_characters_are_indexed_by_role_only(subject: str) -> None:
    index = build_index(config(bindings=[{"subject": subject, "roles": ["db-read"]}]))

    assert cells(index["bindings_by_subject"]) == {}
    assert cells(index["glob_bindings"]) == {"db-read": [subject]}


def test_glob_patterns_of_a_role_are_merged_and_sorted() -> None:
    index = build_index(
        config(
            bindings=[
                {"subject": "z/*", "roles": ["a", "b"]},
                {"subject": "a/*", "roles": ["a"]},
                {"subject": "z/*", "roles": ["a"]},
            ]
        )
    )

    assert cells(index["glob_bindings"]) == {"a": ["a/*", "z/*"], "b": ["z/*"]}


def test_sod_conflicts_hold_in_both_directions() -> None:
    index = build_index(config(sod=[["deployer", "prod-approver"], ["db-write", "prod-approver"]]))

    assert cells(index["sod_conflicts"]) == {
        "db-write": ["prod-approver"],
        "deployer": ["prod-approver"],
        "prod-approver": ["db-write", "deployer"],
    }


def test_keys_are_placed_by_the_form_the_engine_stores_them_in() -> None:
    def escaped(key: str) -> str:
        return key.replace('"', '\\"')

    index = build_index(
        config(bindings=[{"subject": 'user:o"brien', "roles": ["db-read"]}]), stored_form=escaped
    )

    assert lookup(index, "bindings_by_subject", 'user:o"brien', escaped) == ["db-read"]


def test_data_without_grantline_config_gives_an_empty_index() -> None:
    index = build_index({"other": 1})

    assert all(cells(table) == {} for table in index.values())


def test_the_index_is_added_under_its_reserved_key() -> None:
    data = config(bindings=[{"subject": "user:bob", "roles": ["db-read"]}])

    index = with_index(data)["grantline_index"]

    assert lookup(index, "bindings_by_subject", "user:bob") == ["db-read"]
    assert "grantline_index" not in data


def test_data_that_already_sets_the_index_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="reserved"):
        with_index({"grantline_index": {"bindings_by_subject": {"user:eve": ["db-read"]}}})


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"grantline": []}, "data.grantline must be an object"),
        (config(bindings={}), "bindings must be a list"),
        (config(bindings=["user:bob"]), r"bindings\[0\] must be an object"),
        (config(bindings=[{"subject": "", "roles": []}]), r"bindings\[0\].subject"),
        (config(bindings=[{"subject": 7, "roles": []}]), r"bindings\[0\].subject"),
        (config(bindings=[{"subject": "u:a", "roles": "db-read"}]), r"bindings\[0\].roles"),
        (config(bindings=[{"subject": "u:a", "roles": [1]}]), r"bindings\[0\].roles"),
        (config(sod=[["a"]]), r"sod\[0\] must be a pair"),
        (config(sod=[["a", "b", "c"]]), r"sod\[0\] must be a pair"),
        (config(sod=[["a", 2]]), r"sod\[0\] must be a pair"),
        (config(sod={"a": "b"}), "sod must be a list"),
    ],
)
def test_malformed_bindings_and_sod_are_refused(data: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        build_index(data)


@pytest.mark.parametrize(
    ("role", "problem"),
    [
        ("not an object", "must be an object"),
        ({"targets": ["t"]}, "max_ttl_seconds"),
        ({"max_ttl_seconds": 0, "targets": ["t"]}, "max_ttl_seconds"),
        ({"max_ttl_seconds": "60", "targets": ["t"]}, "max_ttl_seconds"),
        ({"max_ttl_seconds": True, "targets": ["t"]}, "max_ttl_seconds"),
        ({"max_ttl_seconds": 1.5, "targets": ["t"]}, "max_ttl_seconds"),
        ({"max_ttl_seconds": 60}, "targets"),
        ({"max_ttl_seconds": 60, "targets": []}, "targets"),
        ({"max_ttl_seconds": 60, "targets": [""]}, "targets"),
        ({"max_ttl_seconds": 60, "targets": ["t"], "credential_types": ["ssh"]}, "credential"),
        ({"max_ttl_seconds": 60, "targets": ["t"], "credential_types": []}, "credential"),
    ],
)
def test_malformed_roles_are_refused_naming_the_role(role: Any, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        build_index({"grantline": {"roles": {"broken": role}}})
    assert "'broken'" in caught.value.message


def test_roles_must_be_an_object() -> None:
    with pytest.raises(ConfigError, match="roles must be an object"):
        build_index({"grantline": {"roles": []}})


def role_with(**extra: Any) -> dict[str, Any]:
    return {"max_ttl_seconds": 3600, "targets": ["postgres://orders-db"], **extra}


def test_approval_break_glass_and_human_only_are_accepted_when_well_formed() -> None:
    role = role_with(
        approval={"all_of": [{"group": "security", "count": 1}, {"group": "oncall", "count": 2}]},
        break_glass={"max_ttl_seconds": 3600},
        human_only=True,
    )

    index = build_index({"grantline": {"roles": {"db-admin": role}}})

    assert lookup(index, "roles", "db-admin") == role


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"approval": None}, r"approval must be an object"),
        ({"approval": []}, r"approval must be an object"),
        ({"approval": {}}, r"approval.all_of must be a non-empty list"),
        ({"approval": {"all_of": []}}, r"approval.all_of must be a non-empty list"),
        ({"approval": {"all_of": {"group": "security"}}}, r"approval.all_of must be a non-empty"),
        ({"approval": {"all_of": ["security"]}}, r"all_of\[0\] must be an object"),
        ({"approval": {"all_of": [{"count": 1}]}}, r"all_of\[0\].group must be a group name"),
        ({"approval": {"all_of": [{"group": "", "count": 1}]}}, r"all_of\[0\].group"),
        ({"approval": {"all_of": [{"group": 7, "count": 1}]}}, r"all_of\[0\].group"),
        ({"approval": {"all_of": [{"group": "s"}]}}, r"all_of\[0\].count must be a whole"),
        ({"approval": {"all_of": [{"group": "s", "count": 0}]}}, r"all_of\[0\].count"),
        ({"approval": {"all_of": [{"group": "s", "count": True}]}}, r"all_of\[0\].count"),
        ({"approval": {"all_of": [{"group": "s", "count": "1"}]}}, r"all_of\[0\].count"),
        ({"approval": {"all_of": [{"group": "s", "count": 1.0}]}}, r"all_of\[0\].count"),
        (
            {"approval": {"all_of": [{"group": "s", "count": 1}, {"group": "s", "count": 1}]}},
            r"all_of\[1\] names group 's' again",
        ),
        ({"break_glass": None}, r"break_glass must be an object"),
        ({"break_glass": True}, r"break_glass must be an object"),
        ({"break_glass": {}}, r"break_glass.max_ttl_seconds must be a whole number"),
        ({"break_glass": {"max_ttl_seconds": 0}}, r"break_glass.max_ttl_seconds"),
        ({"break_glass": {"max_ttl_seconds": "900"}}, r"break_glass.max_ttl_seconds"),
        ({"break_glass": {"max_ttl_seconds": False}}, r"break_glass.max_ttl_seconds"),
        (
            {"break_glass": {"max_ttl_seconds": 3601}},
            r"break_glass.max_ttl_seconds \(3601\) must not exceed the role's "
            r"max_ttl_seconds \(3600\)",
        ),
        ({"human_only": "yes"}, r"human_only must be true or false"),
        ({"human_only": None}, r"human_only must be true or false"),
        ({"human_only": 1}, r"human_only must be true or false"),
    ],
)
def test_malformed_approval_break_glass_and_human_only_are_refused_naming_the_role(
    extra: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        build_index({"grantline": {"roles": {"db-admin": role_with(**extra)}}})
    assert "data.grantline.roles['db-admin']" in caught.value.message


def test_groups_are_indexed_by_name_with_sorted_members_and_by_member() -> None:
    index = build_index(
        config(
            groups={
                "security": ["user:sofia", "user:sam", "user:sam"],
                "oncall": ["user:sam", "user:bob"],
                "empty": [],
            }
        )
    )

    assert cells(index["groups"]) == {
        "security": ["user:sam", "user:sofia"],
        "oncall": ["user:bob", "user:sam"],
        "empty": [],
    }
    assert cells(index["memberships"]) == {
        "user:sam": ["oncall", "security"],
        "user:sofia": ["security"],
        "user:bob": ["oncall"],
    }


@pytest.mark.parametrize(
    ("groups", "problem"),
    [
        ([], "data.grantline.groups must be an object"),
        ({"security": "user:sam"}, r"groups\['security'\] must be a list of subjects"),
        ({"security": ["user:sam", 7]}, r"groups\['security'\] must be a list of subjects"),
        ({"security": [""]}, r"groups\['security'\] must be a list of subjects"),
    ],
)
def test_malformed_groups_are_refused(groups: Any, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        build_index(config(groups=groups))


def test_the_shipped_configuration_is_accepted() -> None:
    shipped = Path(__file__).resolve().parents[3] / "policies" / "data.json"

    index = build_index(json.loads(shipped.read_text()))

    assert lookup(index, "memberships", "user:dan") == ["platform-oncall"]
    assert lookup(index, "groups", "security") == ["user:sam", "user:sofia"]
