# The least Vault/OpenBao privileges the Grantline broker needs. Attach this policy to the
# broker's own token or AppRole and nothing else.
#
# Every credential is minted through the token role "grantline" (orphan, non-renewable):
# the role, not the broker's own policies, bounds which policies a grant token may carry.
# Leased secrets and certificates are then read or issued with that grant token, so the
# broker itself needs no read access to any secret path.

# Mint one orphan grant token per grant, through the token role only ("grantline", the
# default of GRANTLINE_VAULT_TOKEN_ROLE; change it here with that setting).
path "auth/token/create/grantline" {
  capabilities = ["update"]
}

# Its own token: look it up at start-up and renew it before it expires.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
path "auth/token/renew-self" {
  capabilities = ["update"]
}

# Revoke grant tokens by accessor, and read them back (issue time, expiry, request id).
path "auth/token/lookup-accessor" {
  capabilities = ["update"]
}
path "auth/token/revoke-accessor" {
  capabilities = ["update"]
}

# The reconciler lists token accessors to find grant tokens the log does not know. Vault and
# OpenBao protect this listing with "sudo": it is the one path here that has it.
path "auth/token/accessors" {
  capabilities = ["list", "sudo"]
}

# Lease times and revocation for vault_secret grants.
path "sys/leases/lookup" {
  capabilities = ["update"]
}
path "sys/leases/revoke" {
  capabilities = ["update"]
}

# Certificate revocation (puts the serial on the CRL) for x509 grants. Repeat for every PKI
# mount a role names in vault.pki_mount. The reconciler also reads pki/cert/<serial>, which
# the PKI engine serves to anyone (certificates are public), so it needs no rule here.
path "pki/revoke" {
  capabilities = ["update"]
}

# Only with GRANTLINE_VAULT_AUDIT_LOG: the HMAC the file audit device writes for a grant
# token's accessor, so the broker can tell its grants' requests in the audit log. Repeat for
# the device of GRANTLINE_VAULT_AUDIT_DEVICE when it is not "file". (It lets the broker's token
# test guesses against HMAC'd audit values; it reveals no secret and no salt.)
path "sys/audit-hash/file" {
  capabilities = ["update"]
}

# Only with GRANTLINE_SIGNER=transit: sign records and JWTs with keys that never leave Vault,
# and read their public keys (every version, so older records keep verifying). The broker's
# keys are named grantline-* (GRANTLINE_TRANSIT_LOG_KEY, GRANTLINE_TRANSIT_TOKEN_KEY, mount
# GRANTLINE_VAULT_TRANSIT_MOUNT), so a key can be renamed without a policy change and a key
# of the wrong type is refused by name at start-up. No export, rotation or deletion.
path "transit/sign/grantline-*" {
  capabilities = ["update"]
}
path "transit/keys/grantline-*" {
  capabilities = ["read"]
}
