"""The OPA server backend: decisions from an OPA server's Data API, read fail-closed.

The only module that talks to OPA. ``POST /v1/data/grantline/decision?provenance=true``
(and ``.../approval``) with ``{"input": <the canonical input>}``; the answer's ``result`` is
read exactly as the embedded engine reads its own (policy/engine.py), so an undefined or
malformed answer is the same deny with the same reason. Anything else that goes wrong —
OPA unreachable, too slow, an HTTP error, a body that is not a JSON object — denies with
``{"engine_error": true}``. Connection errors (nothing was sent) are retried a bounded number
of times; nothing else is.

Which policy decided is read from OPA's provenance (``bundles``: name -> revision). A single
bundle whose revision is a Grantline bundle digest (``grantline policy bundle`` makes the
revision the digest by default) is named by that digest, so its decisions replay with the
bundle kept under it; any other set of revisions is named by :func:`revisions_digest`.
``Decision.extra["opa"]`` keeps the revisions and OPA's ``decision_id``.

A revision set is used only once it answers an empty input with a well-formed deny (and its
approval rule, if it answers, with a deny), as the embedded engine requires of a bundle
before loading it. The policy data the broker reads itself (approver groups, role
configuration) comes from ``GET /v1/data/grantline/groups`` and ``.../roles``, fetched by
:meth:`OpaEngine.refresh` and trusted for a bounded time; stale data reads as none.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import rfc8785

from grantline.domain.errors import ConfigError, PolicyError
from grantline.domain.models import Decision
from grantline.policy.bundle import PolicyBundle
from grantline.policy.embedded import ENGINE_ERROR
from grantline.policy.engine import (
    OPA_PROVENANCE,
    approval_problem,
    decision_problem,
    digest_of,
    digested_input,
    parse_approval,
    parse_decision,
)
from grantline.policy.index import check_groups, check_roles

log = logging.getLogger(__name__)

DECISION_PATH = "/v1/data/grantline/decision"
APPROVAL_PATH = "/v1/data/grantline/approval"
GROUPS_PATH = "/v1/data/grantline/groups"
ROLES_PATH = "/v1/data/grantline/roles"
# Decision.extra member holding OPA's provenance: {"bundles": {name: revision}, "decision_id"}.
REVISIONS_PREFIX = b"grantline-opa-revisions-v1\n"
_GRANTLINE_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_VETTED = 16
_RETRY_PAUSE_SECONDS = 0.02
_PROVENANCE_MALFORMED = "OPA's provenance is malformed"


@dataclass(frozen=True, slots=True)
class OpaSettings:
    """Where OPA is and how long to wait for it."""

    url: str
    timeout_seconds: float = 0.5
    retries: int = 2
    token: str | None = None
    data_max_age_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class _Answer:
    result: Any
    policy_digest: str
    provenance: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Data:
    groups: dict[str, list[str]]
    roles: dict[str, Any]
    fetched_at: float


def revisions_digest(revisions: Mapping[str, str]) -> str:
    """The policy digest of decisions made under ``revisions`` (bundle name -> revision).

    One bundle whose revision is a Grantline bundle digest is named by it; otherwise
    ``sha256:`` + hex SHA-256 of ``grantline-opa-revisions-v1\\n`` followed by the RFC 8785
    JSON of the map. The prefix keeps it apart from every bundle digest.
    """
    if len(revisions) == 1:
        (revision,) = revisions.values()
        if _GRANTLINE_DIGEST.fullmatch(revision):
            return revision
    return digest_of(REVISIONS_PREFIX + rfc8785.dumps(dict(revisions)))


class OpaEngine:
    """A :class:`~grantline.policy.engine.PolicyEngine` that asks an OPA server.

    Every method that calls OPA blocks on the network (``blocking``): the broker calls them
    off its event loop. Safe to use from several threads at once.
    """

    blocking = True

    def __init__(
        self,
        settings: OpaSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        headers = {"Authorization": f"Bearer {settings.token}"} if settings.token else {}
        self._settings = settings
        self._client = httpx.Client(
            base_url=settings.url,
            timeout=settings.timeout_seconds,
            headers=headers,
            transport=transport,
        )
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._digest = revisions_digest({})
        # Policy digests whose policy answered an empty input with a well-formed deny.
        self._vetted: OrderedDict[str, None] = OrderedDict()
        self._data: _Data | None = None
        self._reachable = False

    @property
    def digest(self) -> str:
        """The policy digest OPA last answered under."""
        return self._digest

    @property
    def url(self) -> str:
        """OPA's URL without any user information it carries, fit for logs."""
        return str(httpx.URL(self._settings.url).copy_with(userinfo=b""))

    @property
    def bundle(self) -> PolicyBundle | None:
        """None: OPA loads its policy itself; no local bundle decides."""
        return None

    def close(self) -> None:
        self._client.close()

    def evaluate(self, policy_input: Mapping[str, Any]) -> Decision:
        return self._decide(policy_input, DECISION_PATH, parse_decision)

    def evaluate_approval(self, approval_input: Mapping[str, Any]) -> Decision:
        return self._decide(approval_input, APPROVAL_PATH, parse_approval)

    def ready(self) -> bool:
        """Whether OPA answered the last :meth:`refresh` with vetted policy and fresh data.
        Never calls OPA: the readiness probe must not wait on it."""
        with self._lock:
            vetted = self._digest in self._vetted
            return self._reachable and vetted and self._data_fresh() is not None

    def group_members(self, group: str) -> frozenset[str]:
        data = self._data_fresh()
        return frozenset(data.groups.get(group, [])) if data is not None else frozenset()

    def role_config(self, role: str) -> Mapping[str, Any]:
        data = self._data_fresh()
        found = data.roles.get(role) if data is not None else None
        return found if isinstance(found, Mapping) else {}

    def bundle_files(self, digest: str) -> Mapping[str, bytes] | None:
        """None: the bundle lives at OPA. Its decisions replay with a bundle some other
        broker kept under the same digest, or under ``policy replay --policies``."""
        return None

    def reload_if_changed(self) -> bool:
        """Refresh what is read from OPA; False, as no local policy is ever loaded."""
        self.refresh()
        return False

    def refresh(self) -> None:
        """Check that OPA answers with a vetted policy and fetch the policy data. Never
        raises: a failure leaves the engine not ready and its data ageing."""
        try:
            # Asked again each time: OPA's policy may change under one digest (one that is
            # not a bundle's, as when OPA loads files), and a refusal is never remembered.
            digest, problem = self._probe()
            data = self._fetch_data()
        except (PolicyError, ConfigError) as exc:
            log.warning("OPA at %s is not usable: %s", self.url, exc.message)
            with self._lock:
                self._reachable = False
            return
        if problem is not None:
            log.error("OPA's policy %s is refused: %s", digest, problem)
        with self._lock:
            self._reachable, self._data = True, data

    def _decide(
        self, policy_input: Mapping[str, Any], path: str, parse: Callable[..., Decision]
    ) -> Decision:
        digested = digested_input(policy_input, self._digest)
        if isinstance(digested, Decision):
            return digested
        canonical, digest = digested
        try:
            answer = self._post(path, canonical)
            problem = self._vet(answer.policy_digest)
        except PolicyError as exc:
            return _engine_error(exc.message, self._digest, digest, canonical)
        if problem is not None:
            reason = f"OPA's policy {answer.policy_digest} is refused: {problem}"
            return _engine_error(reason, answer.policy_digest, digest, canonical)
        decision = parse(answer.result, policy_digest=answer.policy_digest, input_digest=digest)
        extra = {**decision.extra, OPA_PROVENANCE: answer.provenance}
        return dataclasses.replace(decision, extra=extra, input_json=canonical)

    def _vet(self, policy_digest: str) -> str | None:
        """Why the policy ``policy_digest`` may not decide, or None. A policy that passed is
        remembered; one that failed is asked about again next time. Raises
        :class:`PolicyError` when OPA cannot be asked."""
        with self._lock:
            if policy_digest in self._vetted:
                return None
        digest, problem = self._probe()
        if digest != policy_digest:
            raise PolicyError("OPA changed its policy while it was being checked; try again")
        return problem

    def _probe(self) -> tuple[str, str | None]:
        """The digest of the policy OPA serves now, and why it may not decide (or None),
        from its answers to an empty input. Raises :class:`PolicyError`."""
        decision = self._post(DECISION_PATH, b"{}")
        approval = self._post(APPROVAL_PATH, b"{}")
        if decision.policy_digest != approval.policy_digest:
            raise PolicyError("OPA changed its policy while it was being checked; try again")
        digest = decision.policy_digest
        problem = _empty_input_problem(decision.result, approval.result)
        with self._lock:
            self._vetted.pop(digest, None)
            if problem is None:
                self._vetted[digest] = None
                while len(self._vetted) > _VETTED:
                    self._vetted.popitem(last=False)
        return digest, problem

    def _post(self, path: str, canonical: bytes) -> _Answer:
        response = self._send(
            "POST",
            path,
            params={"provenance": "true"},
            content=b'{"input":' + canonical + b"}",
            headers={"Content-Type": "application/json"},
        )
        body = _body(response)
        revisions, provenance = _provenance(body)
        answer = _Answer(body.get("result"), revisions_digest(revisions), provenance)
        self._digest = answer.policy_digest
        return answer

    def _fetch_data(self) -> _Data:
        """The groups and roles of ``data.grantline``. Raises PolicyError or ConfigError."""
        groups = _body(self._send("GET", GROUPS_PATH)).get("result", {})
        roles = _body(self._send("GET", ROLES_PATH)).get("result", {})
        check_roles(roles)
        return _Data(check_groups(groups), roles, self._monotonic())

    def _data_fresh(self) -> _Data | None:
        data, max_age = self._data, self._settings.data_max_age_seconds
        if data is None or self._monotonic() - data.fetched_at > max_age:
            return None
        return data

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call to OPA, retried on connection errors only. Raises :class:`PolicyError`."""
        attempt = 0
        while True:
            try:
                return self._client.request(method, path, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # Nothing reached OPA: asking again cannot make it decide twice.
                if attempt >= self._settings.retries:
                    self._unreachable()
                    raise PolicyError(f"OPA is unreachable ({type(exc).__name__})") from exc
            except httpx.TimeoutException as exc:
                self._unreachable()
                wait = self._settings.timeout_seconds
                raise PolicyError(f"OPA did not answer within {wait:g} s") from exc
            except httpx.HTTPError as exc:
                self._unreachable()
                raise PolicyError(f"OPA could not be asked ({type(exc).__name__})") from exc
            attempt += 1
            time.sleep(_RETRY_PAUSE_SECONDS * attempt)

    def _unreachable(self) -> None:
        with self._lock:
            self._reachable = False


def _engine_error(reason: str, policy_digest: str, input_digest: str, canonical: bytes) -> Decision:
    return Decision(
        allow=False,
        reasons=(reason,),
        policy_digest=policy_digest,
        input_digest=input_digest,
        extra={ENGINE_ERROR: True},
        input_json=canonical,
    )


def _empty_input_problem(decision: Any, approval: Any) -> str | None:
    """What the embedded engine checks before loading a bundle (policy/embedded.py)."""
    problem = decision_problem(decision)
    if problem is not None:
        return f"on an empty input, {problem}"
    if decision["allow"] is True:
        return "it allows an empty input, so it would allow anything"
    if approval is None:
        return None
    problem = approval_problem(approval)
    if problem is not None:
        return f"on an empty input, its approval rule is malformed ({problem})"
    if approval["allow"] is True:
        return "its approval rule allows an empty input, so it would let anyone approve"
    return None


def _body(response: httpx.Response) -> dict[str, Any]:
    """The JSON object OPA answered with. Raises :class:`PolicyError` for anything else."""
    if response.status_code != 200:
        raise PolicyError(f"OPA answered HTTP {response.status_code}{_error_of(response)}")
    try:
        body = json.loads(response.content, object_pairs_hook=_refuse_duplicates)
    except (ValueError, RecursionError) as exc:
        raise PolicyError("OPA answered with something other than JSON") from exc
    if not isinstance(body, dict):
        raise PolicyError("OPA answered with JSON that is not an object")
    return body


def _provenance(body: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """The bundle revisions OPA decided under, and what the record keeps of its provenance.
    Raises :class:`PolicyError` when the provenance is there but malformed."""
    provenance = body.get("provenance", {})
    if not isinstance(provenance, dict):
        raise PolicyError(_PROVENANCE_MALFORMED)
    bundles = provenance.get("bundles")
    if bundles is None:
        # Deprecated: the revision of the one bundle of a legacy configuration.
        legacy = provenance.get("revision")
        bundles = {"": {"revision": legacy}} if isinstance(legacy, str) else {}
    if not isinstance(bundles, dict) or not all(
        isinstance(b, dict) and isinstance(b.get("revision", ""), str) for b in bundles.values()
    ):
        raise PolicyError(_PROVENANCE_MALFORMED)
    revisions = {str(name): str(b.get("revision", "")) for name, b in sorted(bundles.items())}
    kept: dict[str, Any] = {"bundles": revisions}
    if isinstance(body.get("decision_id"), str):
        kept["decision_id"] = body["decision_id"]
    return revisions, kept


def _error_of(response: httpx.Response) -> str:
    try:
        error = response.json()
    except ValueError:
        return ""
    code = error.get("code") if isinstance(error, dict) else None
    # OPA's own error code only: its message may quote the input, which holds claims.
    return f" ({code})" if isinstance(code, str) and code.isprintable() and len(code) < 80 else ""


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        # Two readers could take two different answers from it.
        raise ValueError("duplicate keys")
    return document
