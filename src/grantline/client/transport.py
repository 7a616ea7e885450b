"""The one seam to the network: sends a :class:`~grantline.client.calls.Call` to the broker,
with the caller's token and the retry policy, and maps transport failures to client errors.

Redirects are not followed: a bearer token is never sent on to another address.
"""

from __future__ import annotations

import asyncio
import time
from importlib import metadata

import httpx

from grantline.client import calls
from grantline.client.calls import Call
from grantline.client.errors import TokenUnavailableError, UnexpectedResponseError
from grantline.client.retry import RetryPolicy
from grantline.client.tokens import TokenSource

DEFAULT_TIMEOUT_SECONDS = 10.0


def _user_agent() -> str:
    try:
        return f"grantline-client/{metadata.version('grantline')}"
    except metadata.PackageNotFoundError:
        return "grantline-client"


USER_AGENT = _user_agent()


class _Sender:
    def __init__(self, base_url: str, token: TokenSource | None, retry: RetryPolicy) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"the broker URL must be http(s), got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.retry = retry
        self._token = token

    def url(self, call: Call) -> str:
        return self.base_url + call.path

    def headers(self, call: Call) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if call.authenticated:
            if self._token is None:
                raise TokenUnavailableError(f"{call.method} {call.path} needs an identity token")
            headers["Authorization"] = f"Bearer {self._token.token()}"
        return headers

    def delay_after(self, call: Call, response: httpx.Response, attempt: int) -> float | None:
        return self.retry.after_status(
            call.safety, response.status_code, attempt, calls.retry_after(response)
        )

    def delay_after_error(self, call: Call, error: httpx.HTTPError, attempt: int) -> float:
        """The delay before the next try; raises the client error when there is none."""
        if not isinstance(error, httpx.TransportError):
            raise UnexpectedResponseError(
                f"{call.method} {call.path}: {type(error).__name__}"
            ) from error
        delay = self.retry.after_error(call.safety, error, attempt)
        if delay is None:
            raise calls.unreachable(call, error) from error
        return delay


class SyncSender(_Sender):
    """Sends calls with an ``httpx.Client`` (its own, or one given, which it never closes)."""

    def __init__(
        self,
        base_url: str,
        token: TokenSource | None,
        retry: RetryPolicy,
        http: httpx.Client | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        super().__init__(base_url, token, retry)
        self._owned = http is None
        self._http = http or httpx.Client(timeout=timeout, follow_redirects=False)

    def send(self, call: Call) -> httpx.Response:
        """The broker's answer, after the retries the call's safety allows.

        Raises BrokerUnavailableError when no answer came, TokenUnavailableError when there
        is no token to present.
        """
        attempt = 1
        while True:
            try:
                response = self._http.request(
                    call.method, self.url(call), json=call.body, headers=self.headers(call)
                )
            except httpx.HTTPError as exc:
                delay = self.delay_after_error(call, exc, attempt)
            else:
                retry_in = self.delay_after(call, response, attempt)
                if retry_in is None:
                    return response
                delay = retry_in
            time.sleep(delay)
            attempt += 1

    def close(self) -> None:
        if self._owned:
            self._http.close()


class AsyncSender(_Sender):
    """Sends calls with an ``httpx.AsyncClient`` (its own, or one given, never closed)."""

    def __init__(
        self,
        base_url: str,
        token: TokenSource | None,
        retry: RetryPolicy,
        http: httpx.AsyncClient | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        super().__init__(base_url, token, retry)
        self._owned = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def send(self, call: Call) -> httpx.Response:
        """As :meth:`SyncSender.send`."""
        attempt = 1
        while True:
            try:
                response = await self._http.request(
                    call.method, self.url(call), json=call.body, headers=self.headers(call)
                )
            except httpx.HTTPError as exc:
                delay = self.delay_after_error(call, exc, attempt)
            else:
                retry_in = self.delay_after(call, response, attempt)
                if retry_in is None:
                    return response
                delay = retry_in
            await asyncio.sleep(delay)
            attempt += 1

    async def aclose(self) -> None:
        if self._owned:
            await self._http.aclose()
