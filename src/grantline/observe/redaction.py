"""Take anything that looks like a credential out of text before it is logged.

Caught: JWTs (and JWEs), ``Bearer``/``Basic`` authorization values, Vault and OpenBao
tokens (``hvs.``/``hvb.``/``hvr.``, and the older ``s.``/``b.``/``r.`` forms), PEM private
keys, and the value of a ``password``, ``secret_id`` or ``client_secret`` field. A pattern
can only catch what has a shape: the broker's own code never logs a credential in the
first place; this is the net under it.
"""

from __future__ import annotations

import re

REDACTED = "[REDACTED]"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
            re.DOTALL,
        ),
        REDACTED,
    ),
    (
        re.compile(r"\b(Bearer|Basic)(\s+)[A-Za-z0-9._~+/=-]{16,}", re.IGNORECASE),
        rf"\1\2{REDACTED}",
    ),
    (re.compile(r"eyJ[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*){1,4}"), REDACTED),
    (re.compile(r"(?<![A-Za-z0-9_.-])hv[sbr]\.[A-Za-z0-9_-]{16,}"), REDACTED),
    (re.compile(r"(?<![A-Za-z0-9_.-])[sbr]\.[A-Za-z0-9]{20,}(?![A-Za-z0-9])"), REDACTED),
    (
        re.compile(
            r"""((?:password|passwd|secret_id|client_secret)["']?\s*[:=]\s*["']?)[^"'\s,;&}]+""",
            re.IGNORECASE,
        ),
        rf"\1{REDACTED}",
    ),
)

# One cheap test first: almost every line has none of these and is left as it is.
_ANY = re.compile(
    r"PRIVATE KEY|bearer|basic|eyJ|hv[sbr]\.|(?<![A-Za-z0-9_.-])[sbr]\.[A-Za-z0-9]{20}"
    r"|password|passwd|secret_id|client_secret",
    re.IGNORECASE,
)


def may_hold_secret(text: str) -> bool:
    return _ANY.search(text) is not None


def redact(text: str) -> str:
    """``text`` with every credential-like value replaced by ``[REDACTED]``."""
    if not may_hold_secret(text):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
