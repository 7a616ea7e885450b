"""Caller identity: verify JWTs from trusted issuers; the dev issuer for the embedded defaults."""
