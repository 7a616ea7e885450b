"""The error tree of Grantline.

Every failure raised by Grantline code derives from :class:`GrantlineError`, which carries a
stable machine-readable ``code`` and the HTTP status the API maps it to::

    GrantlineError
    ├── InvalidRequestError        400/422  the caller sent something wrong
    │   └── NotFoundError          404
    ├── AuthenticationError        401      no or bad caller identity
    ├── ForbiddenError             403      identity fine, action not allowed
    ├── ConflictError              409
    │   └── DutiesConflictError    409      a conflicting role became active first (SoD)
    ├── GoneError                  410      it was there once (a collected credential)
    ├── PolicyError                503      the policy engine could not decide
    ├── IssuanceError              503      the credential issuer failed
    ├── DependencyUnavailableError 503      store, signer or another dependency is down
    ├── IntegrityError             500      evidence does not verify
    └── ConfigError                500      settings or files are unusable

A deny is not an error: it is a :class:`~grantline.domain.models.Decision` value.
Messages are shown to callers, so they never contain a secret.
"""

from __future__ import annotations


class GrantlineError(Exception):
    """Root of every Grantline failure."""

    code: str = "internal_error"
    status: int = 500

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidRequestError(GrantlineError):
    code = "invalid_request"
    status = 422


class NotFoundError(InvalidRequestError):
    code = "not_found"
    status = 404


class AuthenticationError(GrantlineError):
    code = "unauthenticated"
    status = 401


class ForbiddenError(GrantlineError):
    code = "forbidden"
    status = 403


class ConflictError(GrantlineError):
    code = "conflict"
    status = 409


class DutiesConflictError(ConflictError):
    """The store refused a grant: its subject holds a role separation of duties keeps apart
    from it, which became active after the policy decided. The broker records the request as
    denied; this never reaches a caller of the API."""

    code = "separation_of_duties"

    def __init__(self, request_id: str, role: str) -> None:
        super().__init__(
            f"separation of duties: {role} became active while this request was decided"
        )
        self.request_id = request_id
        self.role = role


class GoneError(GrantlineError):
    code = "gone"
    status = 410


class PolicyError(GrantlineError):
    code = "policy_unavailable"
    status = 503


class IssuanceError(GrantlineError):
    code = "issuer_unavailable"
    status = 503


class DependencyUnavailableError(GrantlineError):
    code = "dependency_unavailable"
    status = 503


class IntegrityError(GrantlineError):
    code = "integrity_error"
    status = 500


class ConfigError(GrantlineError):
    code = "config_error"
    status = 500
