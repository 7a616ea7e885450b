"""Documented exit codes of every ``grantline`` command."""

OK = 0
DENIED = 1
INTEGRITY = 2
UNAVAILABLE = 3
USAGE = 4
