"""The policy input builder fuzzed with hypothesis.

Properties: whatever claims a trusted issuer puts in a caller's token (any JSON: floats, huge
or negative integers, nesting, any text), the policy input canonicalises — so the ``requested``
record and the decision's digest can always be written — and the active grants it shows are
one per role and target, the longest-lasting, soonest ending first, whatever their order.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from grantline.domain.ids import RequestId
from grantline.domain.models import AccessRequest, ActiveGrant, Identity, Ttl
from grantline.domain.policy_input import active_grants_input, build_policy_input
from grantline.evidence.canonical import canonicalize

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

# What json.loads can give for a token's payload: floats (with inf, nan: PyJWT's parser takes
# Infinity and NaN), integers of any size, any text.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
claims = st.dictionaries(st.text(max_size=12), json_values, max_size=6)


@given(claims, st.text(min_size=1, max_size=40), st.text(max_size=40))
def test_any_claims_of_a_caller_give_an_input_that_canonicalises(
    token_claims: dict[str, Any], subject: str, purpose: str
) -> None:
    identity = Identity(subject=subject, issuer="https://idp.test", claims=token_claims)
    request = AccessRequest(target="postgres://db", role="db-read", ttl=Ttl(60), purpose=purpose)
    document = build_policy_input(identity, request, [], NOW, actor=identity, chain=[subject])
    canonicalize(document)  # raises if the record of this input could not be written
    assert set(document["identity"]["claims"]) == {str(k) for k in token_claims}


grants = st.lists(
    st.builds(
        ActiveGrant,
        request_id=st.text("abcdef0123456789", min_size=4, max_size=8).map(RequestId),
        role=st.sampled_from(["db-read", "deployer", "prod-approver"]),
        target=st.sampled_from(["postgres://a", "k8s://prod"]),
        expires_at=st.integers(0, 7200).map(lambda s: NOW + timedelta(seconds=s)),
    ),
    max_size=12,
    unique_by=lambda grant: grant.request_id,  # a request has one grant
)


@given(grants, st.randoms())
def test_active_grants_are_one_per_role_and_target_longest_first_whatever_their_order(
    active: list[ActiveGrant], shuffle: Any
) -> None:
    shown = active_grants_input(active)
    shuffled = list(active)
    shuffle.shuffle(shuffled)
    assert active_grants_input(shuffled) == shown
    pairs = [(grant["role"], grant["target"]) for grant in shown]
    assert len(pairs) == len(set(pairs)) == len({(g.role, g.target) for g in active})
    assert [grant["expires_at"] for grant in shown] == sorted(g["expires_at"] for g in shown)
    for grant in active:
        longest = max(
            g.expires_at for g in active if (g.role, g.target) == (grant.role, grant.target)
        )
        assert grant.expires_at <= longest
    canonicalize(shown)
