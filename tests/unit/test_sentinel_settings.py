"""Start-up validation of the Redis Sentinel settings, and the client they build (no network:
the sentinels are only asked on the first command)."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio.sentinel import SentinelConnectionPool
from tests.unit.test_config_validation import clean_environment, refused  # noqa: F401 — fixture

from grantline.config import Settings
from grantline.domain.errors import ConfigError
from grantline.store.connection import StoreSettings, connect

SENTINELS = "s1.example:26379,s2.example:26379,[::1]:26380"
URL = "redis://grantline-broker:hunter2@grantline/2"
DURABLE = {
    "store_durability": "waitaof",
    "store_waitaof_replicas": 1,
    "store_waitaof_timeout_ms": 200,
}


def test_sentinels_with_waitaof_and_a_replica_give_the_store_its_addresses() -> None:
    settings = Settings(redis_sentinels=SENTINELS, redis_url=URL, **DURABLE)
    store = settings.store
    assert store.sentinels == (("s1.example", 26379), ("s2.example", 26379), ("::1", 26380))
    assert store.service == "grantline"
    assert store.url == URL


def test_sentinels_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "REDIS_SENTINELS": "10.0.0.1:26379",
        "REDIS_SENTINEL_SERVICE": "orders",
        "REDIS_SENTINEL_PASSWORD": "s3cret",
        "REDIS_URL": "rediss://:pw@orders/0",
        "STORE_DURABILITY": "waitaof",
        "STORE_WAITAOF_REPLICAS": "2",
        "STORE_WAITAOF_TIMEOUT_MS": "100",
    }.items():
        monkeypatch.setenv(f"GRANTLINE_{name}", value)
    store = Settings().store
    assert store.sentinels == (("10.0.0.1", 26379),)
    assert (store.service, store.sentinel_password) == ("orders", "s3cret")


@pytest.mark.parametrize(
    "durability", [{}, {"store_durability": "fsync"}, {"store_durability": "none"}]
)
def test_sentinels_without_waitaof_are_refused_saying_a_failover_loses_writes(
    durability: dict[str, Any],
) -> None:
    message = refused(redis_sentinels=SENTINELS, redis_url=URL, **durability)
    assert "GRANTLINE_REDIS_SENTINELS needs GRANTLINE_STORE_DURABILITY=waitaof" in message
    assert "a failover promotes a replica" in message


def test_sentinels_with_waitaof_but_no_replica_required_are_refused() -> None:
    message = refused(
        redis_sentinels=SENTINELS, redis_url=URL, **{**DURABLE, "store_waitaof_replicas": 0}
    )
    assert "GRANTLINE_STORE_WAITAOF_REPLICAS=1 or more" in message


def test_sentinels_without_a_url_are_refused_naming_the_url_shape() -> None:
    message = refused(redis_sentinels=SENTINELS, **DURABLE)
    assert message.startswith("GRANTLINE_REDIS_URL must be set when GRANTLINE_REDIS_SENTINELS is")
    assert "redis://[user:password@]grantline[/db]" in message


@pytest.mark.parametrize(
    "url",
    [
        "redis://:hunter2@10.0.0.5:6379/0",
        "redis://:hunter2@grantline:6379/0",
        "redis://:hunter2@other/0",
        "unix:///run/redis.sock",
    ],
)
def test_a_url_naming_a_server_instead_of_the_service_is_refused_without_quoting_it(
    url: str,
) -> None:
    message = refused(redis_sentinels=SENTINELS, redis_url=url, **DURABLE)
    assert "must name the Sentinel service as its host" in message
    assert "hunter2" not in message
    assert "10.0.0.5" not in message


def test_the_url_host_follows_the_configured_service() -> None:
    settings = Settings(
        redis_sentinels=SENTINELS,
        redis_sentinel_service="Orders-1",
        redis_url="redis://:pw@orders-1/0",
        **DURABLE,
    )
    assert settings.store.service == "Orders-1"


@pytest.mark.parametrize(
    "value", ["", "s1", "s1:", ":26379", "s1:0", "s1:65536", "s1:port", "s1:26379,,s2:26379"]
)
def test_a_sentinel_list_that_is_not_host_port_entries_is_refused_by_name(value: str) -> None:
    message = refused(redis_sentinels=value, redis_url=URL, **DURABLE)
    assert message.startswith(
        "GRANTLINE_REDIS_SENTINELS must be a comma-separated list of host:port"
    )


@pytest.mark.parametrize("name", ["", "my master", "grant/line", "naïve"])
def test_a_service_name_sentinel_would_not_take_is_refused(name: str) -> None:
    message = refused(redis_sentinel_service=name)
    assert message.startswith("GRANTLINE_REDIS_SENTINEL_SERVICE must be the name of")


def test_without_sentinels_the_store_is_the_url_alone() -> None:
    store = Settings(redis_url="redis://:pw@store:6379/0").store
    assert store.sentinels == ()


def test_no_store_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no store"):
        _ = Settings().store


async def test_the_sentinel_client_keeps_the_timeouts_and_takes_credentials_from_the_url() -> None:
    client = connect(
        StoreSettings(
            "redis://broker:hunter2@grantline/3",
            socket_timeout=0.5,
            sentinels=(("127.0.0.1", 26379),),
            sentinel_password="sentinel-pw",
        )
    )
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    options = pool.connection_kwargs
    assert (options["username"], options["password"], options["db"]) == ("broker", "hunter2", 3)
    assert (options["socket_timeout"], options["socket_connect_timeout"]) == (0.5, 1.0)
    assert "host" not in options
    sentinel = pool.sentinel_manager.sentinels[0].connection_pool.connection_kwargs
    assert sentinel["password"] == "sentinel-pw"
    assert sentinel["socket_timeout"] == 0.5
    # No retries of its own (redis-py's default backs off for seconds): the next one is asked.
    assert sentinel["retry"].get_retries() == 0
    await client.aclose()


def test_a_unix_socket_store_cannot_be_sentinel_managed() -> None:
    with pytest.raises(ConfigError, match="redis:// or rediss://"):
        connect(StoreSettings("unix:///run/redis.sock", sentinels=(("127.0.0.1", 26379),)))
