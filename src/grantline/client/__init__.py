"""The Grantline client: ask a broker for credentials, and verify them at a resource server.

Workloads and agents use :class:`GrantlineClient` (or :class:`AsyncGrantlineClient`) with a
token source; resource servers use :class:`GrantVerifier` (or :class:`AsyncGrantVerifier`), and
report each use of a grant with :class:`UsageReporter` (or :class:`AsyncUsageReporter`).
Only ``grantline.domain`` (pure Python) is imported from the rest of Grantline, with httpx,
PyJWT and cryptography. See docs/client.md.
"""

from grantline.client.async_client import AsyncGrantlineClient
from grantline.client.calls import AgentBlock, CredentialOptions, OutcomeResult, RequestOptions
from grantline.client.errors import (
    AccessDeniedError,
    ApprovalRequiredError,
    ApprovalTimeoutError,
    AuthenticationFailedError,
    BrokerUnavailableError,
    ConflictError,
    CredentialGoneError,
    GrantlineClientError,
    InvalidGrantError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RequestClosedError,
    TokenUnavailableError,
    UnexpectedResponseError,
)
from grantline.client.models import (
    ApprovalState,
    Credential,
    Decision,
    Grant,
    OutcomeReceipt,
    Pending,
    RequestStatus,
    Revocation,
    UsageReceipt,
)
from grantline.client.pop import (
    ProofOfPossessionError,
    make_dpop_proof,
    public_jwk_of,
    verify_proof_of_possession,
)
from grantline.client.renewal import RenewalPolicy
from grantline.client.retry import NO_RETRY, RetryPolicy
from grantline.client.sync_client import GrantlineClient
from grantline.client.tokens import (
    CallableTokenSource,
    EnvTokenSource,
    FileTokenSource,
    StaticTokenSource,
    TokenSource,
)
from grantline.client.usage import AsyncUsageReporter, UsageReporter
from grantline.client.verification import VerificationPolicy, VerifiedGrant
from grantline.client.verifier import AsyncGrantVerifier, GrantVerifier

__all__ = [
    "NO_RETRY",
    "AccessDeniedError",
    "AgentBlock",
    "ApprovalRequiredError",
    "ApprovalState",
    "ApprovalTimeoutError",
    "AsyncGrantVerifier",
    "AsyncGrantlineClient",
    "AsyncUsageReporter",
    "AuthenticationFailedError",
    "BrokerUnavailableError",
    "CallableTokenSource",
    "ConflictError",
    "Credential",
    "CredentialGoneError",
    "CredentialOptions",
    "Decision",
    "EnvTokenSource",
    "FileTokenSource",
    "Grant",
    "GrantVerifier",
    "GrantlineClient",
    "GrantlineClientError",
    "InvalidGrantError",
    "InvalidRequestError",
    "NotFoundError",
    "OutcomeReceipt",
    "OutcomeResult",
    "Pending",
    "PermissionDeniedError",
    "ProofOfPossessionError",
    "RenewalPolicy",
    "RequestClosedError",
    "RequestOptions",
    "RequestStatus",
    "RetryPolicy",
    "Revocation",
    "StaticTokenSource",
    "TokenSource",
    "TokenUnavailableError",
    "UnexpectedResponseError",
    "UsageReceipt",
    "UsageReporter",
    "VerificationPolicy",
    "VerifiedGrant",
    "make_dpop_proof",
    "public_jwk_of",
    "verify_proof_of_possession",
]
