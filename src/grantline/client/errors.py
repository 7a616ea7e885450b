"""What the client raises: one tree under :class:`GrantlineClientError`, mirroring the API.

::

    GrantlineClientError               (a GrantlineError; .code, .status, .request_id)
    ├── AccessDeniedError          403  the policy said no: .reasons, .decision
    │   └── RequestClosedError          the request ended with nothing to collect
    │                                   (rejected, approval window expired, failed)
    ├── ApprovalRequiredError      202  credential() got a request that waits: .pending
    ├── ApprovalTimeoutError            wait_for_approval() gave up; still pending
    ├── AuthenticationFailedError  401  the identity token was refused
    ├── TokenUnavailableError           the token source has no token to present
    ├── PermissionDeniedError      403  not a policy decision: approving one's own request...
    ├── InvalidRequestError        400/413/422  the body or a parameter is wrong
    ├── NotFoundError              404
    ├── ConflictError              409  already approved, not pending, nothing to revoke
    ├── CredentialGoneError        410  the approved credential was collected already
    ├── BrokerUnavailableError     429/502/503/504, connection failures and timeouts
    ├── UnexpectedResponseError         a status or body outside the contract (500 too)
    └── InvalidGrantError               resource side: a Grantline JWT is refused

The message of an error is the broker's own ``error.message`` (which never holds a secret)
or the client's; ``status`` is the HTTP status answered, 0 when there was no answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from grantline.domain.errors import GrantlineError

if TYPE_CHECKING:
    from grantline.client.models import Decision, Pending


class GrantlineClientError(GrantlineError):
    """Root of everything the client raises."""

    code = "client_error"
    status = 0

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        if status is not None:
            self.status = status
        self.request_id = request_id


class AccessDeniedError(GrantlineClientError):
    """The policy denied the request (recorded by the broker like any decision)."""

    code = "policy_denied"
    status = 403

    def __init__(
        self,
        message: str,
        *,
        reasons: tuple[str, ...] = (),
        decision: Decision | None = None,
        code: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, code=code, status=status, request_id=request_id)
        self.reasons = reasons
        self.decision = decision


class RequestClosedError(AccessDeniedError):
    """A request ended without a credential to collect; ``request_status`` says how."""

    code = "request_closed"
    status = 0

    def __init__(self, message: str, *, request_status: str, request_id: str) -> None:
        super().__init__(message, reasons=(message,), request_id=request_id)
        self.request_status = request_status


class ApprovalRequiredError(GrantlineClientError):
    """The role needs approval: ``pending`` says by whom (for :meth:`credential`)."""

    code = "pending_approval"
    status = 202

    def __init__(self, message: str, *, pending: Pending) -> None:
        super().__init__(message, request_id=pending.request_id)
        self.pending = pending


class ApprovalTimeoutError(GrantlineClientError, TimeoutError):
    """Waiting for approval took longer than allowed; the request is still pending."""

    code = "approval_timeout"


class AuthenticationFailedError(GrantlineClientError):
    code = "unauthenticated"
    status = 401


class TokenUnavailableError(GrantlineClientError):
    """The token source could not produce an identity token (missing file or variable)."""

    code = "token_unavailable"


class PermissionDeniedError(GrantlineClientError):
    code = "forbidden"
    status = 403


class InvalidRequestError(GrantlineClientError):
    code = "invalid_request"
    status = 422


class NotFoundError(GrantlineClientError):
    code = "not_found"
    status = 404


class ConflictError(GrantlineClientError):
    code = "conflict"
    status = 409


class CredentialGoneError(GrantlineClientError):
    code = "gone"
    status = 410


class BrokerUnavailableError(GrantlineClientError):
    """The broker did not answer, or answered that it cannot serve now.

    ``retry_after`` is the broker's ``Retry-After`` in seconds, when it sent one.
    ``outcome_unknown`` is true when a call that changes state (asking for access,
    collecting, approving) may have reached the broker before the failure: it may have
    taken effect, so it was not sent again. See docs/client.md, "Retries".
    """

    code = "broker_unavailable"
    status = 0

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message, code=code, status=status, request_id=request_id)
        self.retry_after = retry_after
        self.outcome_unknown = outcome_unknown


class UnexpectedResponseError(GrantlineClientError):
    code = "unexpected_response"


class InvalidGrantError(GrantlineClientError):
    """A resource server refuses a Grantline JWT; ``code`` names the check that failed
    (``expired``, ``wrong_audience``, ``revoked``, ``invalid_dpop_proof``, ...)."""

    code = "invalid_grant"
    status = 401
