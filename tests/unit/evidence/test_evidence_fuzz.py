"""Fuzzing the verifier: arbitrary bytes and mutated exports give findings, never exceptions."""

from __future__ import annotations

from evidence_support import KEYS, export
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grantline.evidence.verify import verify_export

VALID = export()
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# (kind, which line, which byte, xor mask); positions are taken modulo the current sizes.
Mutation = tuple[str, int, int, int]
mutations = st.tuples(
    st.sampled_from(["flip", "delete", "duplicate", "swap", "cut"]),
    st.integers(0, 100),
    st.integers(0, 10_000),
    st.integers(1, 255),
)


def _signature_like(text: str) -> bytes:
    inside = text.encode("utf-8", "surrogatepass")
    return b'{"kid":"x",' + inside + b',"sig":"' + b"A" * 86 + b'"}'


def _mutate(lines: list[bytes], mutation: Mutation) -> list[bytes]:
    kind, at, offset, mask = mutation
    out = list(lines)
    if not out:
        return out
    at %= len(out)
    line = out[at]
    if kind == "flip" and line:
        index = offset % len(line)
        out[at] = line[:index] + bytes([line[index] ^ mask]) + line[index + 1 :]
    elif kind == "delete":
        del out[at]
    elif kind == "duplicate":
        out.insert(at, line)
    elif kind == "swap":
        other = (at + 1) % len(out)
        out[at], out[other] = out[other], out[at]
    elif kind == "cut":
        out[at] = line[: offset % (len(line) or 1)]
    return out


@FUZZ
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_arbitrary_byte_lines_give_findings_not_exceptions(lines: list[bytes]) -> None:
    report = verify_export(lines, KEYS)
    assert not report.ok


@FUZZ
@given(st.lists(st.text(max_size=60).map(_signature_like), max_size=5))
def test_lines_shaped_like_signed_lines_with_junk_inside_give_findings(lines: list[bytes]) -> None:
    assert not verify_export(lines, KEYS).ok


@FUZZ
@given(st.lists(mutations, min_size=1, max_size=3))
def test_every_mutation_of_a_valid_export_is_detected(applied: list[Mutation]) -> None:
    lines = VALID
    for mutation in applied:
        lines = _mutate(lines, mutation)
    report = verify_export(lines, KEYS)
    # Two swaps can undo each other, and a checkpoint repeated at the end attests nothing new.
    records, checkpoint = VALID[:-1], VALID[-1]
    changed = [line for line in lines if line != checkpoint] != records or lines[-1] != checkpoint
    if changed:
        assert not report.ok
    assert report.to_json()
