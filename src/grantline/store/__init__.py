"""Redis repositories for the log and the grants, and the embedded Valkey launcher."""
