"""Policy activations as evidence: each policy a broker process starts deciding with is
recorded (``policy_activated``), and its bundle kept by digest in the same append.

A record names the bundle digest, the digest of each file, the digest that decided before
(in this process after a reload; at start-up, the newest activation any replica recorded)
and what triggered it: ``startup`` or ``reload``, on which host and process. It belongs to
no request (``request_id`` ""). The digest of the newest activation is also kept in the
state of that empty request id, written with the record, so a starting replica finds it in
one read.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from grantline.domain.clock import Clock
from grantline.policy.bundle import PolicyBundle
from grantline.store.ledger import Draft
from grantline.store.log import Effects
from grantline.store.policy_archive import KeptBundle, pack_files

POLICY_ACTIVATED = "policy_activated"
STARTUP = "startup"
RELOAD = "reload"
# Request state of the empty request id: the digest named by the newest activation.
LATEST_ACTIVATION = "activated_policy_digest"


class WatchedPolicy(Protocol):
    """A policy engine as the watch sees it: one that may load a local bundle again."""

    @property
    def blocking(self) -> bool: ...

    @property
    def bundle(self) -> PolicyBundle | None:
        """The local bundle deciding now; None when the policy lives elsewhere (OPA)."""
        ...

    def reload_if_changed(self) -> bool:
        """True when a new bundle decides. Raises ConfigError when a change is refused."""
        ...


class Appender(Protocol):
    async def append(self, drafts: Sequence[Draft]) -> list[bytes]: ...


class RequestState(Protocol):
    async def request(self, request_id: str) -> dict[str, str] | None: ...


@dataclass(frozen=True, slots=True)
class _Activation:
    bundle: PolicyBundle
    trigger: str
    previous: str | None


class PolicyWatch:
    """Reloads the policy when its files change, and records every activation.

    An activation whose record could not be appended (the store was down) is kept and
    appended at the next :meth:`check`, before anything else: none goes unrecorded.
    """

    def __init__(
        self, policy: WatchedPolicy, ledger: Appender, state: RequestState, clock: Clock
    ) -> None:
        self._policy = policy
        self._ledger = ledger
        self._state = state
        self._clock = clock
        self._pending: list[_Activation] = []
        self._who = {"host": socket.gethostname(), "pid": os.getpid()}

    async def start(self) -> None:
        """Record the policy this process starts with (an OPA engine is refreshed instead).

        Raises DependencyUnavailableError when the record cannot be appended.
        """
        if self._policy.blocking:
            await asyncio.to_thread(self._policy.reload_if_changed)
        bundle = self._policy.bundle
        if bundle is None:
            return
        state = await self._state.request("")
        previous = (state or {}).get(LATEST_ACTIVATION)
        self._pending.append(_Activation(bundle, STARTUP, previous))
        await self._flush()

    async def check(self) -> bool:
        """Reload if the policy changed and record it; True when a new policy decides.

        Raises ConfigError when a change was refused (the last good policy decides on), and
        DependencyUnavailableError when a record could not be appended (kept for the next
        check).
        """
        await self._flush()
        before = self._policy.bundle
        if self._policy.blocking:
            changed = await asyncio.to_thread(self._policy.reload_if_changed)
        else:
            changed = self._policy.reload_if_changed()
        after = self._policy.bundle
        if changed and after is not None:
            previous = before.digest if before is not None else None
            self._pending.append(_Activation(after, RELOAD, previous))
            await self._flush()
        return changed

    async def _flush(self) -> None:
        while self._pending:
            await self._ledger.append([self._draft(self._pending[0])])
            self._pending.pop(0)

    def _draft(self, activation: _Activation) -> Draft:
        bundle = activation.bundle
        data: dict[str, Any] = {
            "policy_digest": bundle.digest,
            "files": {path: f"sha256:{hexed}" for path, hexed in bundle.file_digests.items()},
            "previous": activation.previous,
            "trigger": {"kind": activation.trigger, **self._who},
        }
        effects = Effects(
            request={LATEST_ACTIVATION: bundle.digest},
            keep_bundle=KeptBundle(bundle.digest, pack_files(bundle.files)),
        )
        return Draft("", POLICY_ACTIVATED, self._clock.now(), data, effects)
