"""Start-up validation of the settings: a wrong value is refused with its variable's name.

``grantline serve`` prints the message and exits 4 (tests/e2e/test_serve_config.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from grantline import settings_rules
from grantline.config import ClientSettings, Settings
from grantline.domain.errors import ConfigError
from grantline.evidence.signer import LocalEd25519Signer

# A listen address under test: nothing here binds it.
ANY_INTERFACE = "0.0.0.0"  # noqa: S104


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("GRANTLINE_"):
            monkeypatch.delenv(name)


def refused(**values: Any) -> str:
    with pytest.raises(ConfigError) as raised:
        Settings(**values)
    return raised.value.message


def jwks_of(tmp_path: Path) -> dict[str, Any]:
    signer = LocalEd25519Signer.load_or_create(tmp_path / "issuer.pem")
    return {"keys": [signer.public_jwk()]}


def issuers_file(tmp_path: Path, entries: Any) -> Path:
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps(entries))
    return path


def test_the_defaults_of_make_run_are_valid() -> None:
    settings = Settings()
    assert settings.host == "127.0.0.1"
    assert settings.dev_issuer is True
    assert settings_rules.serving_problems(settings) == []


@pytest.mark.parametrize("port", [0, -1, 65536, 70000])
def test_a_port_outside_1_to_65535_is_refused_by_name(port: int) -> None:
    assert refused(port=port) == (
        f"GRANTLINE_PORT must be a TCP port between 1 and 65535, not {port}"
    )


def test_a_value_of_the_wrong_type_is_refused_by_name_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GRANTLINE_PORT", "eighty")
    message = refused()
    assert message.startswith("GRANTLINE_PORT: ")
    assert "eighty" not in message


def test_every_broken_setting_is_named_at_once() -> None:
    message = refused(port=0, log_level="loud", workers=0)
    for name in ("GRANTLINE_PORT", "GRANTLINE_LOG_LEVEL", "GRANTLINE_WORKERS"):
        assert name in message


def test_the_error_is_a_config_error_that_does_not_chain_pydantic_text() -> None:
    with pytest.raises(ConfigError) as raised:
        Settings(redis_url="http://grantline:hunter2@store:6379")
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


@pytest.mark.parametrize(
    "url", ["redis://store:6379/0", "rediss://u:p@store:6380/1", "unix:///run/redis.sock"]
)
def test_redis_and_unix_socket_urls_are_accepted(url: str) -> None:
    assert Settings(redis_url=url).redis_url == url


@pytest.mark.parametrize(
    "url", ["http://grantline:hunter2@store:6379", "store:6379", "redis://", "unix://"]
)
def test_a_store_url_of_another_kind_is_refused_without_quoting_it(url: str) -> None:
    message = refused(redis_url=url)
    assert message.startswith("GRANTLINE_REDIS_URL ")
    assert "hunter2" not in message


@pytest.mark.parametrize("name", ["vault_addr", "public_url", "webhook_url", "opa_url"])
@pytest.mark.parametrize("url", ["ftp://host/x", "/relative/path", "http:///no-host", "host:80"])
def test_http_urls_must_be_absolute_http_or_https(name: str, url: str) -> None:
    values: dict[str, Any] = {name: url, "vault_token": "t", "webhook_secret": "s"}
    message = refused(**values)
    assert message.startswith(f"GRANTLINE_{name.upper()} must be ")


def test_a_webhook_url_with_a_token_is_never_quoted() -> None:
    message = refused(webhook_url="ftp://hooks.example/x?token=s3cret", webhook_secret="k")
    assert "s3cret" not in message


def test_the_public_url_must_be_absolute() -> None:
    assert "absolute" in refused(public_url="http:///grantline")
    assert Settings(public_url="https://grantline.example.org").issuer_url == (
        "https://grantline.example.org"
    )


@pytest.mark.parametrize("host", [ANY_INTERFACE, "::", "10.0.0.5", "grantline.example.org"])
def test_the_dev_issuer_on_a_network_address_is_refused(host: str) -> None:
    message = refused(host=host)
    assert "GRANTLINE_DEV_ISSUER=true" in message
    assert f"GRANTLINE_HOST={host}" in message
    assert "GRANTLINE_ALLOW_DEV_ISSUER_ON_NETWORK=true" in message


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_the_dev_issuer_on_loopback_is_fine(host: str) -> None:
    assert Settings(host=host).dev_issuer is True


def test_the_dev_issuer_on_the_network_needs_the_explicit_override() -> None:
    settings = Settings(host="0.0.0.0", allow_dev_issuer_on_network=True)  # noqa: S104
    assert settings.dev_issuer is True
    assert Settings(host="0.0.0.0", dev_issuer=False).host == "0.0.0.0"  # noqa: S104


def test_a_webhook_url_without_a_secret_is_refused() -> None:
    message = refused(webhook_url="https://hooks.example/grantline")
    assert message.startswith("GRANTLINE_WEBHOOK_SECRET must be set when GRANTLINE_WEBHOOK_URL")
    settings = Settings(webhook_url="https://hooks.example/grantline", webhook_secret="k")
    assert settings.webhook_secret == "k"


def test_vault_needs_a_token_or_a_whole_approle() -> None:
    message = refused(vault_addr="https://vault.example:8200")
    assert "GRANTLINE_VAULT_TOKEN" in message
    assert "GRANTLINE_VAULT_ADDR" in message
    assert "set together" in refused(vault_addr="https://v:8200", vault_role_id="r")
    assert Settings(vault_addr="https://v:8200", vault_role_id="r", vault_secret_id="s")


def test_the_transit_signer_needs_vault() -> None:
    message = refused(signer="transit", vault_dev=False)
    assert message == "GRANTLINE_SIGNER=transit needs GRANTLINE_VAULT_ADDR"
    # With the local dev OpenBao, `serve` gives it an address itself.
    assert Settings(signer="transit").signer == "transit"


@pytest.mark.parametrize("name", ["workers", "max_body_bytes"])
def test_counts_below_one_are_refused(name: str) -> None:
    assert refused(**{name: 0}).startswith(f"GRANTLINE_{name.upper()} must be a number above 0")


@pytest.mark.parametrize(
    "name", ["store_timeout_seconds", "vault_timeout_seconds", "policy_reload_seconds"]
)
@pytest.mark.parametrize("value", [0, -1.5, float("nan"), float("inf")])
def test_timeouts_and_intervals_must_be_positive_and_finite(name: str, value: float) -> None:
    assert refused(**{name: value}).startswith(f"GRANTLINE_{name.upper()} must be")


def test_the_reconciler_may_be_off_but_not_negative() -> None:
    assert Settings(reconcile_seconds=0).reconcile_seconds == 0
    assert refused(reconcile_grace_seconds=-1).startswith(
        "GRANTLINE_RECONCILE_GRACE_SECONDS must be 0 or more"
    )


def test_log_levels_are_uvicorns_in_any_case() -> None:
    assert Settings(log_level="WARNING").log_level == "warning"
    assert refused(log_level="verbose").startswith("GRANTLINE_LOG_LEVEL must be one of")


def test_the_log_origin_is_one_word() -> None:
    assert refused(log_origin="my log").startswith("GRANTLINE_LOG_ORIGIN must be one word")
    assert Settings(log_origin="grantline.example.org/grantline").origin == (
        "grantline.example.org/grantline"
    )


def test_an_unreadable_trusted_issuers_file_is_refused(tmp_path: Path) -> None:
    message = refused(trusted_issuers=tmp_path / "missing.json")
    assert message.startswith("GRANTLINE_TRUSTED_ISSUERS: cannot read trusted issuers")
    (tmp_path / "bad.json").write_text("{not json")
    assert refused(trusted_issuers=tmp_path / "bad.json").startswith("GRANTLINE_TRUSTED_ISSUERS")


def test_a_trusted_issuer_with_a_missing_or_empty_jwks_file_is_refused(tmp_path: Path) -> None:
    missing = issuers_file(tmp_path, [{"issuer": "https://idp", "jwks_file": "nope.json"}])
    assert "cannot read the JWKS file" in refused(trusted_issuers=missing)
    (tmp_path / "empty.json").write_text('{"keys": []}')
    empty = issuers_file(tmp_path, [{"issuer": "https://idp", "jwks_file": "empty.json"}])
    assert "no usable signing key" in refused(trusted_issuers=empty)


def test_a_jwks_url_must_be_https_except_on_loopback(tmp_path: Path) -> None:
    clear = issuers_file(tmp_path, [{"issuer": "i", "jwks_url": "http://idp.example/jwks"}])
    assert refused(trusted_issuers=clear) == (
        "GRANTLINE_TRUSTED_ISSUERS: the jwks_url of i must be https"
    )
    local = issuers_file(tmp_path, [{"issuer": "i", "jwks_url": "http://127.0.0.1:9/jwks"}])
    assert Settings(trusted_issuers=local).trusted_issuers == local


def test_a_good_trusted_issuers_file_is_accepted_without_fetching_urls(tmp_path: Path) -> None:
    (tmp_path / "jwks.json").write_text(json.dumps(jwks_of(tmp_path)))
    path = issuers_file(
        tmp_path,
        [
            {"issuer": "https://files.example", "jwks_file": "jwks.json"},
            {"issuer": "https://inline.example", "jwks": jwks_of(tmp_path)},
            # Unreachable: URLs are fetched when first needed, never at start-up.
            {"issuer": "https://url.example", "jwks_url": "https://192.0.2.1/jwks"},
        ],
    )
    settings = Settings(trusted_issuers=path, dev_issuer=False, host="0.0.0.0")  # noqa: S104
    assert settings_rules.serving_problems(settings) == []


def test_serving_without_any_trusted_issuer_is_refused() -> None:
    problems = settings_rules.serving_problems(Settings(dev_issuer=False))
    assert problems == [
        "GRANTLINE_TRUSTED_ISSUERS must be set when GRANTLINE_DEV_ISSUER=false: "
        "with no trusted identity issuer every request would be refused"
    ]


def test_serving_without_a_store_when_embedding_is_off_is_refused() -> None:
    problems = settings_rules.serving_problems(Settings(embedded_store=False))
    assert problems[0].startswith(
        "GRANTLINE_REDIS_URL must be set when GRANTLINE_EMBEDDED_STORE=false"
    )
    settings = Settings(embedded_store=False, redis_url="redis://store:6379/0")
    assert settings_rules.serving_problems(settings) == []


def test_client_settings_name_their_variable_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRANTLINE_TIMEOUT_SECONDS", "soon")
    with pytest.raises(ConfigError) as raised:
        ClientSettings()
    assert raised.value.message.startswith("GRANTLINE_TIMEOUT_SECONDS: ")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.0.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        (ANY_INTERFACE, False),
        ("::", False),
        ("", False),
        ("192.168.1.4", False),
        ("localhost.example.org", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert settings_rules.is_loopback(host) is loopback
