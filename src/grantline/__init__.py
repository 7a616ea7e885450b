"""Grantline: a policy-as-code, just-in-time access broker for non-human identities."""

__version__ = "0.1.0"
