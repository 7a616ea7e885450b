"""The evidence package stays light: stdlib, cryptography, rfc8785 and grantline.domain only."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import grantline.evidence

ALLOWED_ROOTS = {"cryptography", "rfc8785"}
ALLOWED_GRANTLINE = ("grantline.domain", "grantline.evidence")
# Speed, not meaning: libsodium verifies the same signatures faster, for audit verify at scale.
ACCELERATORS = {"fast_keys.py": {"nacl"}}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_evidence_modules_import_only_the_stdlib_cryptography_rfc8785_and_the_domain() -> None:
    package = Path(grantline.evidence.__file__).parent
    for path in sorted(package.glob("*.py")):
        for name in _imports(path):
            root = name.partition(".")[0]
            allowed = (
                root in sys.stdlib_module_names
                or root in ALLOWED_ROOTS
                or root in ACCELERATORS.get(path.name, set())
                or name == "__future__"
                or name.startswith(ALLOWED_GRANTLINE)
            )
            assert allowed, f"{path.name} imports {name}"
