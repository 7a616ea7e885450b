"""The ``grantline`` command. Exit codes: 0 ok, 1 denied or findings of policy tests,
2 integrity failure, 3 dependency unavailable, 4 usage or configuration error."""
