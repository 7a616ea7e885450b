"""What the MCP tools do, without the MCP SDK: ask the broker as an agent for its principal,
check a pending request, report the outcome of the action a grant served, revoke it.

Every answer is a plain dict for the agent to read. A policy denial is an answer (a value),
not a failure; a call that cannot be made or that the broker refuses raises
:class:`ToolRefusedError`, whose message is the broker's (never a token, never a trace).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict

import jwt

from grantline.client import (
    AccessDeniedError,
    AgentBlock,
    ApprovalState,
    AsyncGrantlineClient,
    BrokerUnavailableError,
    Grant,
    GrantlineClientError,
    OutcomeResult,
    Pending,
    RequestStatus,
)
from grantline.domain.errors import InvalidRequestError

CredentialKind = Literal["jwt", "vault_token", "x509", "vault_secret"]

# A digest is all an agent shares of its prompt: the prompt itself never leaves the agent.
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


class ToolRefusedError(InvalidRequestError):
    """A tool call that could not be made, or that the broker refused. The message is for
    the agent: the broker's own, or what to send instead."""

    code = "tool_refused"


@dataclass(frozen=True, slots=True)
class Delegation:
    """The tokens a tool call acts with: the agent's own identity, and the token of the
    principal it acts for (needed only to ask for access)."""

    agent_token: str
    principal_token: str | None = None

    def __repr__(self) -> str:
        return "Delegation(<tokens hidden>)"


@dataclass(frozen=True, slots=True)
class AccessArguments:
    """The arguments of ``request_access``, as the agent gave them."""

    target: str
    role: str
    ttl_seconds: int
    purpose: str
    goal: str
    tool_name: str | None = None
    prompt_sha256: str | None = None
    credential_type: CredentialKind = "jwt"


class AccessAnswer(TypedDict):
    """What ``request_access`` and ``check_request`` answer."""

    status: str
    request_id: str
    next_step: str
    credential: NotRequired[dict[str, Any]]
    reasons: NotRequired[list[str]]
    policy_digest: NotRequired[str]
    approval: NotRequired[dict[str, Any]]


class OutcomeAnswer(TypedDict):
    request_id: str
    event: str
    seq: int


class RevocationAnswer(TypedDict):
    request_id: str
    status: str
    already: bool


class AccessTools:
    """The tools, talking to the broker at ``broker_url`` with a new client per call: each
    call may come from another agent (streamable HTTP), with tokens of its own."""

    def __init__(self, broker_url: str, *, timeout: float = 10.0) -> None:
        self._url = broker_url
        self._timeout = timeout

    async def request_access(self, who: Delegation, args: AccessArguments) -> AccessAnswer:
        """Ask once, as the agent for its principal.

        Raises ToolRefusedError: no principal token, a malformed prompt digest (both before
        anything is sent), or a request the broker refused other than by policy.
        """
        if not who.principal_token:
            raise ToolRefusedError(
                "no principal token: an agent asks on behalf of someone, whose token proves it"
            )
        block = agent_block(args, who.principal_token)  # refuses a bad digest before sending
        async with self._client(who) as client:
            try:
                answer = await client.request_access(
                    args.target,
                    args.role,
                    args.ttl_seconds,
                    purpose=args.purpose,
                    credential_type=args.credential_type,
                    subject_token=who.principal_token,
                    agent=block,
                )
            except AccessDeniedError as denied:
                return denied_answer(denied)
            except (GrantlineClientError, ValueError, TypeError) as exc:
                raise refused(exc) from None
        return issued_answer(answer) if isinstance(answer, Grant) else pending_answer(answer)

    async def check_request(self, who: Delegation, request_id: str) -> AccessAnswer:
        """Where a request stands; an approved credential is collected (handed out once).

        Raises ToolRefusedError: the broker refused (another's request, a collected credential).
        """
        async with self._client(who) as client:
            try:
                current = await client.status(request_id)
                if current.status == "issued" and current.credential_ready:
                    return issued_answer(await client.collect(request_id))
            except (GrantlineClientError, ValueError) as exc:
                raise refused(exc) from None
        return status_answer(current)

    async def report_outcome(
        self,
        who: Delegation,
        request_id: str,
        action: str,
        result: OutcomeResult,
        *,
        changed: Sequence[str] = (),
        summary: str | None = None,
    ) -> OutcomeAnswer:
        """Record what the action the grant served did, on the request's lineage.

        Raises ToolRefusedError: nothing was issued (409), not the agent's request, or a
        report out of bounds.
        """
        async with self._client(who) as client:
            try:
                receipt = await client.report_outcome(
                    request_id, action, result, changed=changed, summary=summary
                )
            except (GrantlineClientError, ValueError, TypeError) as exc:
                raise refused(exc) from None
        return {"request_id": receipt.request_id, "event": "outcome", "seq": receipt.seq}

    async def revoke_access(
        self, who: Delegation, request_id: str, reason: str
    ) -> RevocationAnswer:
        """Revoke the grant (harmless if done already). Raises ToolRefusedError when refused."""
        async with self._client(who) as client:
            try:
                revocation = await client.revoke(request_id, reason)
            except (GrantlineClientError, ValueError) as exc:
                raise refused(exc) from None
        return {
            "request_id": revocation.request_id,
            "status": revocation.status,
            "already": revocation.already,
        }

    def _client(self, who: Delegation) -> AsyncGrantlineClient:
        return AsyncGrantlineClient(self._url, who.agent_token, timeout=self._timeout)


def agent_block(args: AccessArguments, principal_token: str) -> AgentBlock:
    """The ``agent`` member of the request: whom for, the goal, the tool, the prompt digest.

    Raises ToolRefusedError for a ``prompt_sha256`` that is not a SHA-256 hex digest, without
    repeating it (it might be the prompt itself).
    """
    block: AgentBlock = {"goal": args.goal}
    principal = principal_subject(principal_token)
    if principal:
        block["on_behalf_of"] = principal
    if args.tool_name:
        block["tool"] = args.tool_name
    if args.prompt_sha256 is not None:
        if not _SHA256_HEX.fullmatch(args.prompt_sha256):
            raise ToolRefusedError(
                "prompt_sha256 must be the SHA-256 digest of the prompt as 64 hex characters, "
                "never the prompt itself; nothing was sent"
            )
        block["prompt_sha256"] = args.prompt_sha256.lower()
    return block


def principal_subject(token: str) -> str:
    """The ``sub`` the principal's token claims, unverified: the broker verifies the token
    and refuses an ``on_behalf_of`` that does not match it. Empty when it cannot be read."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return ""
    subject = claims.get("sub")
    return subject if isinstance(subject, str) else ""


def issued_answer(grant: Grant) -> AccessAnswer:
    answer: AccessAnswer = {
        "status": "issued",
        "request_id": grant.request_id,
        "credential": dict(grant.credential.fields),
        "next_step": (
            "use the credential until expires_at; report what you did with report_outcome, "
            "and revoke_access as soon as you no longer need it"
        ),
    }
    if grant.decision is not None:
        answer["policy_digest"] = grant.decision.policy_digest
    return answer


def pending_answer(pending: Pending) -> AccessAnswer:
    missing = ", ".join(f"{f.count} of {f.group}" for f in pending.approval.missing)
    return {
        "status": "pending_approval",
        "request_id": pending.request_id,
        "approval": approval_view(pending.approval),
        "next_step": (
            f"a person must approve this request (missing: {missing or 'none'}); tell your "
            "principal, then call check_request with this request_id to collect the credential"
        ),
    }


def denied_answer(denied: AccessDeniedError) -> AccessAnswer:
    decision = denied.decision
    return {
        "status": "denied",
        "request_id": denied.request_id or "",
        "reasons": list(denied.reasons) or [denied.message],
        "policy_digest": decision.policy_digest if decision else "",
        "next_step": (
            "the policy denied this request: do not ask again unchanged; ask for less "
            "(a shorter TTL, a narrower role) or tell your principal the reasons"
        ),
    }


def status_answer(current: RequestStatus) -> AccessAnswer:
    answer: AccessAnswer = {
        "status": current.status,
        "request_id": current.request_id,
        "next_step": _next_step_of(current),
    }
    if current.approval is not None:
        answer["approval"] = approval_view(current.approval)
    return answer


def approval_view(approval: ApprovalState) -> dict[str, Any]:
    return {
        "missing": [{"group": f.group, "count": f.count} for f in approval.missing],
        "eligible": list(approval.eligible),
        "expires_at": approval.expires_at.isoformat() if approval.expires_at else None,
    }


def refused(exc: Exception) -> ToolRefusedError:
    """The agent-facing error of a failed call: the broker's message, and what to do."""
    message = exc.message if isinstance(exc, GrantlineClientError) else str(exc)
    if isinstance(exc, BrokerUnavailableError) and exc.outcome_unknown:
        message += " (the broker may have acted on it: check before asking again)"
    return ToolRefusedError(message)


def _next_step_of(current: RequestStatus) -> str:
    if current.pending:
        return "still waiting for approval: call check_request again later"
    if current.status == "issued":
        return "issued, and its credential was handed out already"
    return f"the request is {current.status}: nothing more will be issued for it"
