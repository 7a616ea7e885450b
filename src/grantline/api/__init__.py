"""The HTTP API: parse, authenticate, call the broker, map errors to statuses through one table."""
