"""The reconciler: compares recorded grants with the issuers' real state (arrives with Vault)."""
