"""Approval quorums: several factors that must all hold, each "N distinct approvers of group G".

The policy decides whether one approver may approve and for which groups; counting is here.
One approver counts once, for one factor only, so an approver in two required groups cannot
fill both. Whether the approvals so far meet the quorum is a bipartite matching of approvers
to factor slots: greedy assignment in arrival order could use a two-group approver for the
wrong factor and leave a quorum that could be met looking unmet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_FACTORS = 16
MAX_COUNT = 32


@dataclass(frozen=True, slots=True)
class Factor:
    group: str
    count: int
    members: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"group": self.group, "count": self.count, "members": list(self.members)}


@dataclass(frozen=True, slots=True)
class Approval:
    """One approver's yes, and the required groups the approval policy let it count for."""

    approver: str
    groups: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"approver": self.approver, "groups": list(self.groups)}


@dataclass(frozen=True, slots=True)
class Requirement:
    """All factors must hold."""

    factors: tuple[Factor, ...]

    @classmethod
    def parse(cls, raw: Any) -> Requirement:
        """Read ``{"all_of": [{"group", "count", "members"?}, ...]}``; ValueError if malformed."""
        factors = raw.get("all_of") if isinstance(raw, Mapping) else None
        if not isinstance(factors, list) or not 0 < len(factors) <= MAX_FACTORS:
            raise ValueError(f"approval.all_of must list 1 to {MAX_FACTORS} factors")
        parsed = []
        for factor in factors:
            group = factor.get("group") if isinstance(factor, Mapping) else None
            count = factor.get("count") if isinstance(factor, Mapping) else None
            members = factor.get("members", []) if isinstance(factor, Mapping) else None
            if not isinstance(group, str) or not group:
                raise ValueError("each approval factor needs a group name")
            if isinstance(count, bool) or not isinstance(count, int) or not 0 < count <= MAX_COUNT:
                raise ValueError(f"approval factor {group}: count must be 1 to {MAX_COUNT}")
            if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
                raise ValueError(f"approval factor {group}: members must be subject names")
            parsed.append(Factor(group, count, tuple(members)))
        if len({f.group for f in parsed}) != len(parsed):
            raise ValueError("approval factors name the same group twice")
        return cls(tuple(parsed))

    def as_dict(self) -> dict[str, Any]:
        return {"all_of": [factor.as_dict() for factor in self.factors]}

    def missing(self, approvals: Sequence[Approval]) -> list[dict[str, Any]]:
        """Per factor still short, how many more approvals it needs (empty: quorum met)."""
        filled = self.assign(approvals)
        return [
            {"group": f.group, "count": f.count - len(filled[f.group])}
            for f in self.factors
            if len(filled[f.group]) < f.count
        ]

    def met(self, approvals: Sequence[Approval]) -> bool:
        return not self.missing(approvals)

    def assign(self, approvals: Sequence[Approval]) -> dict[str, list[str]]:
        """A maximum assignment of distinct approvers to factor slots, group -> sorted approvers."""
        slots = [(f.group, n) for f in self.factors for n in range(f.count)]
        holder: dict[int, int] = {}  # slot index -> approval index
        for index in range(len(approvals)):
            _augment(index, approvals, slots, holder, set())
        filled: dict[str, list[str]] = {f.group: [] for f in self.factors}
        for slot, index in sorted(holder.items()):
            filled[slots[slot][0]].append(approvals[index].approver)
        return {group: sorted(approvers) for group, approvers in filled.items()}

    def groups(self) -> tuple[str, ...]:
        return tuple(f.group for f in self.factors)


def _augment(
    index: int,
    approvals: Sequence[Approval],
    slots: Sequence[tuple[str, int]],
    holder: dict[int, int],
    visited: set[int],
) -> bool:
    """Kuhn's augmenting path: seat approval ``index``, moving others along if need be."""
    for slot, (group, _) in enumerate(slots):
        if group not in approvals[index].groups or slot in visited:
            continue
        visited.add(slot)
        if slot not in holder or _augment(holder[slot], approvals, slots, holder, visited):
            holder[slot] = index
            return True
    return False
