"""Credential issuers: each mints, fingerprints and revokes one kind of credential."""
