"""Reading Rego source without an AST: the built-ins a module refers to, and its package.

rego-cpp exposes no syntax tree, so a small tokenizer reads the source: comments, strings and
raw strings are skipped, numbers are read whole, and what remains is split into dotted
references (``http.send``, ``input.request.role``). A reference that continues another one
(``input.x.http.send``, ``x[0].http.send``) is never taken for a built-in.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import pairwise

# Built-ins whose answer depends on something other than the input and the data: a decision
# that calls one cannot be replayed and may differ between two evaluations of one input.
UNREPLAYABLE: Mapping[str, str] = {
    "http.send": "calls out over the network",
    "net.lookup_ip_addr": "resolves names through DNS",
    "time.now_ns": "reads the clock (the broker puts the time in input.now)",
    "rand.intn": "draws a random number",
    "uuid.rfc4122": "draws a random UUID",
    "opa.runtime": "reads the OPA server's own configuration and environment",
    "io.jwt.decode_verify": "checks exp and nbf against the clock unless constraints give time",
    "crypto.x509.parse_and_verify_certificates": "checks validity against the clock",
    "crypto.x509.parse_and_verify_certificates_with_options": "checks validity against the clock",
}

_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_PART = _NAME_START | frozenset("0123456789")
_NUMBER_PART = _NAME_PART | frozenset(".")


@dataclass(frozen=True, slots=True)
class Reference:
    """A dotted reference at the root of an expression, and the line it starts on."""

    name: str
    line: int


@dataclass(frozen=True, slots=True)
class UnsafeCall:
    """A reference to a built-in that makes decisions unreplayable."""

    path: str
    line: int
    builtin: str
    why: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.builtin} {self.why}"


def unsafe_calls(path: str, source: str) -> list[UnsafeCall]:
    """Every reference in ``source`` to a built-in of :data:`UNREPLAYABLE`, in order."""
    return [
        UnsafeCall(path, ref.line, ref.name, UNREPLAYABLE[ref.name])
        for ref in references(source)
        if ref.name in UNREPLAYABLE
    ]


def package_of(source: str) -> str | None:
    """The dotted package a module declares (``grantline``, ``a.b``), or None if none."""
    refs = references(source)
    for ref, following in pairwise(refs):
        if ref.name == "package":
            return following.name
    return None


def references(source: str) -> list[Reference]:
    """The root references of ``source``, outside comments and strings."""
    return list(_Scanner(source).references())


class _Scanner:
    def __init__(self, source: str) -> None:
        self._text = source
        self._at = 0
        self._line = 1

    def references(self) -> Iterator[Reference]:
        text = self._text
        while self._at < len(text):
            char = text[self._at]
            if char == "#":
                self._skip_until("\n", inclusive=False)
            elif char == '"':
                self._skip_string()
            elif char == "`":
                self._at += 1
                self._skip_until("`", inclusive=True)
            elif char in _NAME_START:
                continues = self._at > 0 and text[self._at - 1] == "."
                line, name = self._line, self._read_reference()
                if not continues:
                    yield Reference(name, line)
            elif char.isdigit():
                self._read_while(_NUMBER_PART)
            else:
                self._line += char == "\n"
                self._at += 1

    def _read_reference(self) -> str:
        parts = [self._read_while(_NAME_PART)]
        text = self._text
        while (
            self._at + 1 < len(text) and text[self._at] == "." and text[self._at + 1] in _NAME_START
        ):
            self._at += 1
            parts.append(self._read_while(_NAME_PART))
        return ".".join(parts)

    def _read_while(self, allowed: frozenset[str]) -> str:
        start = self._at
        while self._at < len(self._text) and self._text[self._at] in allowed:
            self._at += 1
        return self._text[start : self._at]

    def _skip_string(self) -> None:
        self._at += 1
        text = self._text
        while self._at < len(text) and text[self._at] not in '"\n':
            # An escape takes the next character with it, an escaped quote included.
            escaped = text[self._at] == "\\" and text[self._at + 1 : self._at + 2] not in {"", "\n"}
            self._at += 2 if escaped else 1
        self._at += 1 if self._at < len(text) and text[self._at] == '"' else 0

    def _skip_until(self, end: str, *, inclusive: bool) -> None:
        found = self._text.find(end, self._at)
        stop = len(self._text) if found < 0 else found + (1 if inclusive else 0)
        self._line += self._text.count("\n", self._at, stop)
        self._at = stop
