"""Quorum counting: every factor must hold, one approver counts once, for one factor."""

from __future__ import annotations

import pytest

from grantline.domain.approvals import Approval, Requirement

TWO_FACTORS = Requirement.parse(
    {"all_of": [{"group": "security", "count": 1}, {"group": "oncall", "count": 2}]}
)


def test_every_factor_must_hold() -> None:
    approvals = [Approval("bob", ("oncall",)), Approval("carol", ("oncall",))]
    assert not TWO_FACTORS.met(approvals)
    assert TWO_FACTORS.missing(approvals) == [{"group": "security", "count": 1}]
    assert TWO_FACTORS.met([*approvals, Approval("sam", ("security",))])


def test_an_approver_in_two_groups_fills_only_one_slot() -> None:
    both = Approval("dana", ("security", "oncall"))
    still = sum(entry["count"] for entry in TWO_FACTORS.missing([both]))
    assert still == 2
    assert not TWO_FACTORS.met([both, Approval("bob", ("oncall",))])


def test_a_two_group_approver_is_moved_to_where_it_is_needed() -> None:
    # Greedy in arrival order would seat dana in security, then sam would add nothing.
    approvals = [
        Approval("dana", ("security", "oncall")),
        Approval("sam", ("security",)),
        Approval("bob", ("oncall",)),
    ]
    assert TWO_FACTORS.met(approvals)
    assert TWO_FACTORS.assign(approvals) == {"security": ["sam"], "oncall": ["bob", "dana"]}


def test_an_approval_for_no_required_group_counts_for_nothing() -> None:
    assert TWO_FACTORS.missing([Approval("eve", ("finance",))]) == [
        {"group": "security", "count": 1},
        {"group": "oncall", "count": 2},
    ]


@pytest.mark.parametrize(
    "raw",
    [
        None,
        {},
        {"all_of": []},
        {"all_of": [{"group": "", "count": 1}]},
        {"all_of": [{"group": "a", "count": 0}]},
        {"all_of": [{"group": "a", "count": True}]},
        {"all_of": [{"group": "a", "count": 1}, {"group": "a", "count": 2}]},
        {"all_of": [{"group": "a", "count": 1, "members": [1]}]},
    ],
)
def test_malformed_requirements_are_refused(raw: object) -> None:
    with pytest.raises(ValueError, match="approval"):
        Requirement.parse(raw)
