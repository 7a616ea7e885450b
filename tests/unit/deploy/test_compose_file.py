"""deploy/compose.yaml, parsed: the services, their health checks and order, the store's
durability and ACL, and the broker's environment validated as the broker would validate it."""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from tests.unit.deploy.deploy_files import (
    COMPOSE,
    DEPLOY,
    DEV_ISSUER_OVERRIDE,
    REPO,
    bind_mounts,
    compose,
    compose_environment,
    host_path,
    interpolate,
    service,
    settings_names,
)

from grantline import settings_rules
from grantline.cli.main import build_parser
from grantline.config import Settings

LONG_RUNNING = ("valkey", "openbao", "opa", "broker")
ONE_SHOTS = ("openbao-init", "policy-bundle")
REDIS = DEPLOY / "redis"


def valkey_config() -> dict[str, str]:
    values = {}
    for line in (REDIS / "valkey.conf").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition(" ")
            values[name] = value.strip()
    return values


def acl_users() -> dict[str, list[str]]:
    users = {}
    for line in (REDIS / "users.acl").read_text().splitlines():
        words = line.split()
        assert words[0] == "user", "ACL files hold user lines only (no comments)"
        users[words[1]] = words[2:]
    return users


def broker_settings(monkeypatch: pytest.MonkeyPatch, *, with_dev_issuer: bool) -> Settings:
    """Settings() as the broker container builds it, files read through its mounts."""
    mounts = bind_mounts("broker")
    for name in list(os.environ):
        if name.startswith("GRANTLINE_"):
            monkeypatch.delenv(name)
    for name, value in compose_environment("broker", with_dev_issuer=with_dev_issuer).items():
        mapped = host_path(value, mounts) if value.startswith("/") else None
        monkeypatch.setenv(name, str(mapped) if mapped else value)
    return Settings()


def test_the_stack_has_the_broker_opa_openbao_and_valkey() -> None:
    assert set(compose()["services"]) == {*LONG_RUNNING, *ONE_SHOTS}


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_every_long_running_service_has_a_health_check_and_restarts(name: str) -> None:
    definition = service(name)
    assert definition["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")
    assert definition["restart"] == "unless-stopped"


def test_the_broker_starts_once_its_dependencies_are_healthy_or_prepared() -> None:
    assert service("broker")["depends_on"] == {
        "valkey": {"condition": "service_healthy"},
        "openbao-init": {"condition": "service_completed_successfully"},
        "opa": {"condition": "service_healthy"},
    }
    assert service("openbao-init")["depends_on"] == {"openbao": {"condition": "service_healthy"}}
    assert service("opa")["depends_on"] == {
        "policy-bundle": {"condition": "service_completed_successfully"}
    }


def test_only_the_broker_is_published_and_only_on_loopback() -> None:
    for name, definition in compose()["services"].items():
        if name != "broker":
            assert "ports" not in definition, name
    assert service("broker")["ports"] == ["127.0.0.1:8400:8400"]
    networks = compose()["networks"]
    assert networks["backend"]["internal"] is True
    for name in ("valkey", "openbao", "opa", "openbao-init"):
        assert service(name)["networks"] == ["backend"]


def test_the_broker_container_is_locked_down() -> None:
    broker = service("broker")
    assert broker["read_only"] is True
    assert broker["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in broker["security_opt"]
    assert "grantline-home:/var/lib/grantline" in broker["volumes"]


def test_valkey_fsyncs_every_write_never_evicts_and_loads_the_acl_it_mounts() -> None:
    config = valkey_config()
    assert config["appendonly"] == "yes"
    assert config["appendfsync"] == "always"
    assert config["maxmemory-policy"] == "noeviction"
    assert config["save"] == '""'
    valkey = service("valkey")
    conf_target = valkey["command"][-1]
    targets = {mount.target: mount.source for mount in bind_mounts("valkey")}
    assert targets[conf_target] == (REDIS / "valkey.conf").resolve()
    assert targets[config["aclfile"]] == (REDIS / "users.acl").resolve()


def test_the_default_user_is_off_and_the_broker_user_cannot_remove_the_log() -> None:
    users = acl_users()
    assert users["default"] == ["off"]
    rules = users["grantline"]
    assert rules[0] == "on"
    # The password is kept as its SHA-256 only: never in clear, never "nopass".
    assert rules[1].startswith("#") and len(rules[1]) == 65
    assert not any(rule.startswith(">") or rule == "nopass" for rule in rules)
    assert rules[2:4] == ["resetkeys", "resetchannels"]
    assert "-@all" in rules
    granted = {rule.lower() for rule in rules if rule.startswith("+")}
    for command in ("xdel", "xtrim", "unlink", "rename", "expire", "flushall", "@all", "@write"):
        assert f"+{command}" not in granted
    # DEL only inside the selector of the keys the broker deletes, never the log.
    assert "+del" not in rules
    selector = " ".join(rules[rules.index("(~{grantline}:lock:*") :])
    assert selector.endswith("+del)")
    assert "{grantline}:log " not in selector
    assert "~*" not in rules and "allkeys" not in rules


def test_the_acl_password_is_the_one_in_the_brokers_store_url() -> None:
    url = urlsplit(compose_environment("broker")["GRANTLINE_REDIS_URL"])
    assert url.username == "grantline"
    password = unquote(url.password or "")
    digest = acl_users()["grantline"][1]
    assert digest == "#" + hashlib.sha256(password.encode()).hexdigest()
    assert compose_environment("valkey")["GRANTLINE_REDIS_PASSWORD"] == password


def test_every_grantline_variable_of_the_stack_is_a_setting() -> None:
    for with_dev_issuer in (False, True):
        names = set(compose_environment("broker", with_dev_issuer=with_dev_issuer))
        assert names <= settings_names(), names - settings_names()


def test_the_brokers_environment_passes_start_up_validation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = broker_settings(monkeypatch, with_dev_issuer=False)
    assert settings.dev_issuer is False
    assert settings.host == "0.0.0.0"  # noqa: S104
    assert settings.opa_url == "http://opa:8181"
    assert settings.redis_url and settings.redis_url.startswith("redis://grantline:")
    assert settings_rules.serving_problems(settings) == []
    assert settings.policies == (REPO / "policies").resolve()


def test_the_dev_issuer_override_is_explicit_about_the_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = broker_settings(monkeypatch, with_dev_issuer=True)
    assert settings.dev_issuer is True
    assert settings.allow_dev_issuer_on_network is True
    assert "LAPTOP ONLY" in DEV_ISSUER_OVERRIDE.read_text()


def test_openbao_is_prepared_with_the_brokers_own_policy_file() -> None:
    init = service("openbao-init")
    environment = compose_environment("openbao-init")
    mounts = {mount.target: mount.source for mount in bind_mounts("openbao-init")}
    assert (
        mounts[environment["GRANTLINE_POLICY_FILE"]]
        == (DEPLOY / "vault" / "grantline-broker.hcl").resolve()
    )
    assert mounts[init["entrypoint"][-1]] == (DEPLOY / "vault" / "init-openbao.sh").resolve()
    # The broker logs in with the token the init script creates.
    assert (
        environment["GRANTLINE_VAULT_TOKEN"]
        == compose_environment("broker")["GRANTLINE_VAULT_TOKEN"]
    )
    assert environment["BAO_TOKEN"] in interpolate(" ".join(service("openbao")["command"]))
    assert "-dev" in service("openbao")["command"], "dev mode, and the file says so"
    assert "DEV MODE" in COMPOSE.read_text()


def test_opa_serves_the_bundle_that_grantline_policy_bundle_writes() -> None:
    bundle = service("policy-bundle")
    args = build_parser().parse_args(bundle["command"])
    assert args.policy_command == "bundle"
    out = Path(args.out)
    volume = next(v for v in bundle["volumes"] if v.startswith("opa-bundles:"))
    assert str(out.parent) == volume.split(":")[1]
    opa = service("opa")["command"]
    served = opa[opa.index("--bundle") + 1]
    opa_volume = next(v for v in service("opa")["volumes"] if v.startswith("opa-bundles:"))
    assert served == f"{opa_volume.split(':')[1]}/{out.name}"
    assert "--addr=0.0.0.0:8181" in opa, "OPA 1.x listens on localhost by default"
    assert bundle["network_mode"] == "none"


def test_the_valkey_health_check_logs_in_as_the_broker() -> None:
    test = " ".join(service("valkey")["healthcheck"]["test"])
    words = shlex.split(test.split("CMD-SHELL", 1)[1].split("|")[0])
    assert words[words.index("--user") + 1] == "grantline"
    assert "$$GRANTLINE_REDIS_PASSWORD" in test


def test_docker_compose_accepts_the_file() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client on this machine; the file is checked by parsing")
    version = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, check=False
    )
    if version.returncode != 0:
        pytest.skip("the docker client has no compose plugin; the file is checked by parsing")
    for files in (["-f", str(COMPOSE)], ["-f", str(COMPOSE), "-f", str(DEV_ISSUER_OVERRIDE)]):
        result = subprocess.run(
            [docker, "compose", *files, "config", "--quiet"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
