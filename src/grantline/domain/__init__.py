"""Pure models and rules of Grantline: no I/O, no vendors."""
