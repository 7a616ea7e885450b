"""``x509``: a short-lived certificate from a PKI mount, issued for the caller's identity.

Vault generates the private key; it goes to the caller only and is never recorded. A SPIFFE
ID subject becomes the certificate's URI SAN (and it has no common name); any other
subject is its common name. The
record keeps the serial, the SHA-256 of the certificate and its expiry. Revocation puts the
serial on the mount's CRL and revokes the grant token (and with it the certificate's lease
when the PKI role sets ``generate_lease``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from grantline.domain.errors import IssuanceError
from grantline.domain.models import CredentialType, IssuedCredential, format_time
from grantline.issuers.base import GrantSpec, SourceState, fingerprint
from grantline.issuers.vault.client import VaultClient
from grantline.issuers.vault.grant_token import create_grant_token, revoked_on_failure
from grantline.issuers.vault.role import VaultRole

SPIFFE_SCHEME = "spiffe://"


class VaultPkiIssuer:
    credential_type = CredentialType.X509
    external = True

    def __init__(self, client: VaultClient) -> None:
        self._client = client

    async def mint(self, spec: GrantSpec) -> IssuedCredential:
        role = VaultRole.of(spec.role, spec.issuer_config)
        if role.pki_role is None:
            raise IssuanceError(
                f"role {spec.role} has no vault.pki_role to issue from", code="issuer_misconfigured"
            )
        token = await create_grant_token(self._client, spec, role.require_policies(spec.role))
        async with revoked_on_failure(self._client, token):
            response = await self._client.write_with(
                token.token,
                f"{role.pki_mount}/issue/{role.pki_role}",
                _issue_params(spec),
            )
            data: Mapping[str, Any] = response.get("data") or {}
            certificate = _certificate(data)
            serial = str(data["serial_number"])
            expires_at = certificate.not_valid_after_utc
        handle = {"accessor": token.info.accessor, "serial": serial, "pki_mount": role.pki_mount}
        lease_id = response.get("lease_id")
        if isinstance(lease_id, str) and lease_id:
            handle["lease_id"] = lease_id
        return IssuedCredential(
            type=self.credential_type,
            fingerprint=fingerprint(certificate.public_bytes(Encoding.DER)),
            issued_at=token.info.issued_at,
            expires_at=expires_at,
            handle=handle,
            secret={
                "certificate": data["certificate"],
                "private_key": data["private_key"],
                "private_key_type": data.get("private_key_type"),
                "issuing_ca": data.get("issuing_ca"),
                "ca_chain": data.get("ca_chain") or [],
                "serial_number": serial,
                "expires_at": format_time(expires_at),
            },
        )

    async def revoke(self, handle: Mapping[str, str]) -> None:
        await self._client.revoke_certificate(handle["pki_mount"], handle["serial"])
        await self._client.revoke_accessor(handle["accessor"])

    async def state_at_source(self, handle: Mapping[str, str]) -> SourceState:
        """Alive while the mount knows the serial, has not revoked it and it has not expired."""
        record = await self._client.read_certificate(handle["pki_mount"], handle["serial"])
        if record is None or int(record.get("revocation_time") or 0) > 0:
            return SourceState.GONE
        certificate = _certificate({**record, "private_key": "", "serial_number": ""})
        alive = certificate.not_valid_after_utc > datetime.now(UTC)
        return SourceState.ALIVE if alive else SourceState.GONE


def _issue_params(spec: GrantSpec) -> dict[str, Any]:
    params: dict[str, Any] = {"ttl": f"{spec.ttl_seconds}s", "format": "pem"}
    if spec.subject.startswith(SPIFFE_SCHEME):
        # An X.509-SVID: the SPIFFE ID is the one URI SAN and there is no common name
        # (the PKI role needs require_cn=false and allowed_uri_sans for the trust domain).
        params["uri_sans"] = spec.subject
    else:
        params["common_name"] = spec.subject
    return params


def _certificate(data: Mapping[str, Any]) -> x509.Certificate:
    pem = data.get("certificate")
    if not isinstance(pem, str) or "private_key" not in data or "serial_number" not in data:
        raise IssuanceError("Vault returned an incomplete certificate", code="vault_error")
    try:
        return x509.load_pem_x509_certificate(pem.encode("ascii"))
    except ValueError as exc:
        raise IssuanceError("Vault returned an unreadable certificate", code="vault_error") from exc
