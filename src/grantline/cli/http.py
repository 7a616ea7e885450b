"""The HTTP client of the commands that talk to a broker."""

from __future__ import annotations

import argparse
from typing import Any

import httpx

from grantline.config import ClientSettings
from grantline.domain.errors import (
    AuthenticationError,
    ConfigError,
    DependencyUnavailableError,
    ForbiddenError,
    IntegrityError,
)


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", help="broker URL (default $GRANTLINE_URL or http://127.0.0.1:8400)"
    )
    parser.add_argument("--token", help="identity JWT (default $GRANTLINE_TOKEN)")


def broker_client(args: argparse.Namespace) -> httpx.Client:
    """A client for the broker named by ``--url``, presenting ``--token``.

    Raises:
        AuthenticationError: no token was given.
    """
    settings = ClientSettings()
    token = args.token or settings.token
    if not token:
        raise AuthenticationError("give an identity token with --token or GRANTLINE_TOKEN")
    return httpx.Client(
        base_url=(args.url or settings.url).rstrip("/"),
        headers={"Authorization": f"Bearer {token}"},
        timeout=settings.timeout_seconds,
    )


def send(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """Send one request. Raises DependencyUnavailableError when the broker cannot be reached."""
    try:
        return client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise DependencyUnavailableError(
            f"cannot reach the broker at {client.base_url}: {exc}"
        ) from exc


def error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


def raise_for(response: httpx.Response) -> None:
    """Raise the error a failed answer means: IntegrityError when the broker found its own
    evidence altered, ForbiddenError for 403, AuthenticationError for 401,
    DependencyUnavailableError for another broker-side failure, ConfigError (a usage error)
    for any other 4xx."""
    if response.status_code < 400:
        return
    if _error_code(response) == IntegrityError.code:
        raise IntegrityError(error_message(response))
    if response.status_code == 401:
        raise AuthenticationError(error_message(response))
    if response.status_code == 403:
        raise ForbiddenError(error_message(response))
    if response.status_code >= 500:
        raise DependencyUnavailableError(error_message(response))
    if response.status_code >= 400:
        raise ConfigError(error_message(response))


def _error_code(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return ""
