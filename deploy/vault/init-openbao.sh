#!/bin/sh
# Prepares an OpenBao (or Vault) for Grantline: the broker's least-privilege policy, the token
# role every grant token is created through, the policies of the shipped roles
# (policies/data.json), a PKI mount and role for x509 grants, Transit keys for
# GRANTLINE_SIGNER=transit, and the broker's own token. The same set-up as `grantline serve`
# gives its local dev server (src/grantline/issuers/vault/devserver.py), with the bao CLI.
#
# Needs: BAO_ADDR, BAO_TOKEN (a token that may write policies, mounts and roles: the root
# token of a dev server), GRANTLINE_VAULT_TOKEN (the id the broker's token gets: choose a
# long random value; no '.'). Optional: GRANTLINE_POLICY_FILE (the broker policy, default
# /grantline/grantline-broker.hcl), BAO (the CLI, default bao). Safe to run again.
#
# On a real Vault/OpenBao, give the broker an AppRole instead of a token with a chosen id:
#   bao auth enable approle
#   bao write auth/approle/role/grantline-broker token_policies=grantline-broker \
#       token_no_default_policy=true token_ttl=1h token_max_ttl=24h secret_id_ttl=0
# and set GRANTLINE_VAULT_ROLE_ID / GRANTLINE_VAULT_SECRET_ID (README, "Deploying").
set -eu

: "${BAO_ADDR:?set BAO_ADDR}"
: "${BAO_TOKEN:?set BAO_TOKEN (a token allowed to configure OpenBao)}"
: "${GRANTLINE_VAULT_TOKEN:?set GRANTLINE_VAULT_TOKEN (the id of the broker token to create)}"
POLICY_FILE=${GRANTLINE_POLICY_FILE:-/grantline/grantline-broker.hcl}
BAO=${BAO:-bao}
export BAO_ADDR BAO_TOKEN

mounted() {
    "$BAO" secrets list -format=json | grep -q "\"$1/\""
}

echo "grantline: the broker's policy (grantline-broker)"
"$BAO" policy write grantline-broker "$POLICY_FILE"

# The shipped roles' policies, carried by their grant tokens (names must match grantline-*,
# the token role's glob; devserver.ROLE_POLICIES holds the same).
"$BAO" policy write grantline-kv-read - <<'HCL'
path "secret/data/*" { capabilities = ["read"] }
HCL
"$BAO" policy write grantline-pki-workload - <<'HCL'
path "pki/issue/workload" { capabilities = ["update"] }
HCL
"$BAO" policy write grantline-cache-read - <<'HCL'
path "database/creds/cache-read" { capabilities = ["read"] }
HCL

echo "grantline: the token role (orphan, non-renewable grant tokens)"
# Orphans, so that losing the broker's token does not take every live credential with it;
# the role, not the broker's own policy, bounds which policies a grant token may carry.
"$BAO" write auth/token/roles/grantline \
    orphan=true renewable=false token_type=service \
    allowed_policies_glob='grantline-*' disallowed_policies=root,grantline-broker >/dev/null

echo "grantline: PKI mount pki/ and role workload (x509 grants)"
if ! mounted pki; then
    "$BAO" secrets enable -path=pki -max-lease-ttl=720h pki
    "$BAO" write -field=serial_number pki/root/generate/internal \
        common_name="Grantline quick-start CA" ttl=720h key_type=ec >/dev/null
    "$BAO" write pki/config/urls crl_distribution_points="$BAO_ADDR/v1/pki/crl" >/dev/null
fi
# SPIFFE IDs become the one URI SAN with no common name; leases on, so that revoking a grant
# token revokes a certificate minted just before a crash.
"$BAO" write pki/roles/workload \
    allow_any_name=true enforce_hostnames=false allowed_uri_sans='spiffe://*' \
    require_cn=false generate_lease=true key_type=ec key_bits=256 max_ttl=24h >/dev/null

echo "grantline: Transit keys for GRANTLINE_SIGNER=transit"
if ! mounted transit; then
    "$BAO" secrets enable transit
fi
for key in grantline-log grantline-token; do
    "$BAO" read "transit/keys/$key" >/dev/null 2>&1 \
        || "$BAO" write -f "transit/keys/$key" type=ed25519 >/dev/null
done

# A chosen id keeps the quick start to one .env file; OpenBao warns that such ids are hashed
# with SHA-1 in its storage. Real deployments use AppRole (above).
echo "grantline: the broker's token (policy grantline-broker only, periodic)"
if ! "$BAO" token lookup "$GRANTLINE_VAULT_TOKEN" >/dev/null 2>&1; then
    "$BAO" token create -id="$GRANTLINE_VAULT_TOKEN" -policy=grantline-broker \
        -no-default-policy -orphan -period=768h -display-name=grantline-broker >/dev/null
fi
echo "grantline: OpenBao is ready for the broker"
