"""The embedded Rego engine: a policy directory compiled by regopy (rego-cpp) in this process.

The only module that imports regopy; its exceptions become deny decisions or ConfigError.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rfc8785
from regopy import Interpreter, LogLevel, NodeKind
from regopy import rego_shared as _capi
from regopy.rego_shared import rego_node_value

from grantline.domain.errors import ConfigError, PolicyError
from grantline.domain.models import Decision
from grantline.policy.bundle import PolicyBundle, StatFingerprint, stat_fingerprint
from grantline.policy.engine import (
    NO_APPROVAL_RULE,
    approval_problem,
    decision_problem,
    digested_input,
    parse_approval,
    parse_decision,
)
from grantline.policy.index import with_index

ENTRYPOINT = "grantline/decision"
APPROVAL_ENTRYPOINT = "grantline/approval"
# Marks, in Decision.extra, a deny caused by the engine failing rather than by the policy.
ENGINE_ERROR = "engine_error"
_ERRORMSG = re.compile(rb"\(errormsg (\d+):")
_ERROR_AT = re.compile(rb"\(error (\d+):")
_ERROR_OFFSET = re.compile(rb"\|(\d+)\|")
# rego-cpp keeps strings JSON-escaped inside; these are the characters escaping changes.
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')
# rego-cpp answers "undefined" alike for a rule that is not there and one undefined for the
# input, so whether the approval rule exists is read from the source: a top-level line that
# opens with `approval` (or `default approval`) in a module of package grantline. A wrong
# reading only changes which reason a deny gives.
_PACKAGE_GRANTLINE = re.compile(r"^package[ \t]+grantline[ \t]*(?:#.*)?$", re.MULTILINE)
_APPROVAL_HEAD = re.compile(r"^(?:default[ \t]+)?approval\b", re.MULTILINE)


class EmbeddedRegoEngine:
    """A :class:`~grantline.policy.engine.PolicyEngine` over the policy files in a directory.

    A bundle is used only when it compiles and answers an empty input with a well-formed
    deny: rego-cpp compiles some broken policies and fails only when they run, and a policy
    that allows an empty input would allow anything. ``unsafe_accept_allow_all`` waives the
    deny (benchmark baselines); never use it for a policy that guards anything.

    On a broken change, :meth:`reload_if_changed` keeps deciding with the last good bundle,
    as OPA does, and raises :class:`ConfigError` once for that state of the directory;
    ``reload_error`` keeps the error until a good policy loads. A broken policy therefore
    never decides, and never allows. Vendor errors while evaluating become denies whose
    ``extra`` holds ``{"engine_error": true}``.
    """

    # Evaluates in this process, in microseconds: callers stay on their event loop.
    blocking = False

    def __init__(self, policy_dir: Path, *, unsafe_accept_allow_all: bool = False) -> None:
        """Load and compile ``policy_dir``. Raises :class:`ConfigError` when it is unusable."""
        self._dir = policy_dir
        self._accept_allow_all = unsafe_accept_allow_all
        # regopy's Interpreter is not thread-safe: one query at a time, and swaps between them.
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._active = self._compile_checked(PolicyBundle.load(policy_dir))
        # Bundles that decided lately, by digest: a decision is recorded after it is made,
        # when a reload may already have replaced the bundle that made it.
        self._recent = OrderedDict({self.digest: self._active.bundle})
        self._refused: StatFingerprint | None = None
        self._reload_error: ConfigError | None = None

    @property
    def digest(self) -> str:
        return self._active.bundle.digest

    @property
    def bundle(self) -> PolicyBundle:
        """The bundle deciding now."""
        return self._active.bundle

    @property
    def reload_error(self) -> ConfigError | None:
        """Why the directory's current content was refused, while the last good bundle decides."""
        return self._reload_error

    def evaluate(self, policy_input: Mapping[str, Any]) -> Decision:
        return self._evaluate(policy_input, ENTRYPOINT, parse_decision)

    def evaluate_approval(self, approval_input: Mapping[str, Any]) -> Decision:
        """The policy's ``approval`` answer; a policy without that rule denies every approval."""
        return self._evaluate(approval_input, APPROVAL_ENTRYPOINT, parse_approval)

    def group_members(self, group: str) -> frozenset[str]:
        """Subjects of ``data.grantline.groups[group]`` in the bundle in force (empty if none)."""
        config = self._active.bundle.data.get("grantline")
        groups = config.get("groups") if isinstance(config, Mapping) else None
        members = groups.get(group) if isinstance(groups, Mapping) else None
        if not isinstance(members, list):
            return frozenset()
        return frozenset(m for m in members if isinstance(m, str))

    def role_config(self, role: str) -> Mapping[str, Any]:
        config = self._active.bundle.data.get("grantline")
        roles = config.get("roles") if isinstance(config, Mapping) else None
        found = roles.get(role) if isinstance(roles, Mapping) else None
        return found if isinstance(found, Mapping) else {}

    def bundle_files(self, digest: str) -> Mapping[str, bytes] | None:
        bundle = self._recent.get(digest)
        return bundle.files if bundle is not None else None

    def ready(self) -> bool:
        """Whether the bundle in force still answers an empty input with a decision."""
        with self._lock:
            try:
                raw = self._active.query({}, b"{}", ENTRYPOINT)
            except PolicyError:
                return False
        return decision_problem(raw) is None

    def reload_if_changed(self) -> bool:
        """Load the directory again if a policy file changed; True when a new bundle decides.

        Raises :class:`ConfigError` when the changed directory is refused: the last good
        bundle keeps deciding, and the same broken state is not reported again.
        """
        with self._reload_lock:
            try:
                fingerprint = stat_fingerprint(self._dir)
            except ConfigError as exc:
                # A vanished directory is refused like an empty one, once.
                return self._refuse((), exc)
            if fingerprint == self._active.bundle.loaded_fingerprint:
                self._refused, self._reload_error = None, None
                return False
            if fingerprint == self._refused:
                return False
            try:
                bundle = PolicyBundle.load(self._dir)
                if bundle.digest == self.digest:
                    self._swap(self._active.with_bundle(bundle))
                    return False
                self._swap(self._compile_checked(bundle))
            except ConfigError as exc:
                return self._refuse(fingerprint, exc)
            return True

    def _evaluate(
        self, policy_input: Mapping[str, Any], entrypoint: str, parse: _Parser
    ) -> Decision:
        digested = digested_input(policy_input, self.digest)
        if isinstance(digested, Decision):
            return digested
        canonical, digest = digested
        compiled, raw = self._query(policy_input, canonical, entrypoint)
        if raw is _NO_RULE:
            decision = Decision.deny(
                NO_APPROVAL_RULE, policy_digest=compiled.bundle.digest, input_digest=digest
            )
        elif isinstance(raw, PolicyError):
            decision = Decision(
                allow=False,
                reasons=(raw.message,),
                policy_digest=compiled.bundle.digest,
                input_digest=digest,
                extra={ENGINE_ERROR: True},
            )
        else:
            decision = parse(raw, policy_digest=compiled.bundle.digest, input_digest=digest)
        return dataclasses.replace(decision, input_json=canonical)

    def _query(
        self, policy_input: Mapping[str, Any], canonical: bytes, entrypoint: str
    ) -> tuple[_Compiled, Any]:
        """The bundle that answered and its raw answer, the :class:`PolicyError` it raised,
        or ``_NO_RULE`` when its policy does not define ``entrypoint``."""
        with self._lock:
            compiled = self._active
            if entrypoint not in compiled.entrypoints:
                return compiled, _NO_RULE
            try:
                return compiled, compiled.query(policy_input, canonical, entrypoint)
            except PolicyError as exc:
                return compiled, exc

    def _swap(self, compiled: _Compiled) -> None:
        with self._lock:
            self._active = compiled
            self._recent[compiled.bundle.digest] = compiled.bundle
            self._recent.move_to_end(compiled.bundle.digest)
            while len(self._recent) > _RECENT_BUNDLES:
                self._recent.popitem(last=False)
        self._refused, self._reload_error = None, None

    def _refuse(self, fingerprint: StatFingerprint, exc: ConfigError) -> bool:
        if fingerprint == self._refused:
            return False
        self._refused, self._reload_error = fingerprint, exc
        raise ConfigError(
            f"policy in {self._dir} was refused, {self.digest} still decides: {exc.message}"
        ) from exc

    def _compile_checked(self, bundle: PolicyBundle) -> _Compiled:
        compiled = _compile(bundle)
        problem = _first_answer_problem(compiled, accept_allow_all=self._accept_allow_all)
        if problem is not None:
            raise ConfigError(f"policy in {bundle.root} is refused: {problem}")
        return compiled


_Parser = Callable[..., Decision]
_RECENT_BUNDLES = 8
# What _query answers for an entrypoint the policy does not define.
_NO_RULE = object()


@dataclass(frozen=True, slots=True)
class _Compiled:
    """One bundle compiled by one interpreter; the caller holds the engine's lock to query.

    ``entrypoints`` are those the policy defines: the decision always (a bundle without it
    is refused), the approval rule when its source has one.
    """

    bundle: PolicyBundle
    interpreter: Any
    rego_bundle: Any
    set_input: Callable[[Any, Mapping[str, Any], bytes], None]
    entrypoints: frozenset[str]

    def with_bundle(self, bundle: PolicyBundle) -> _Compiled:
        return _Compiled(
            bundle, self.interpreter, self.rego_bundle, self.set_input, self.entrypoints
        )

    def query(self, policy_input: Mapping[str, Any], canonical: bytes, entrypoint: str) -> Any:
        """The document at ``entrypoint``, or None when undefined. Raises :class:`PolicyError`."""
        try:
            self.set_input(self.interpreter, policy_input, canonical)
            output = self.interpreter.query_bundle_entrypoint(self.rego_bundle, entrypoint)
            ok, text = bool(output.ok()), str(output)
        # regopy raises RegoError, and json errors when rego-cpp reports an error as text.
        except Exception as exc:
            raise PolicyError(f"policy evaluation failed: {_describe(exc)}") from exc
        if not ok:
            raise PolicyError(f"policy evaluation failed: {_node_errors(output.node())}")
        return _read_output(text)


def _compile(bundle: PolicyBundle) -> _Compiled:
    data_json = _data_json(bundle)
    interpreter = Interpreter()
    try:
        interpreter.log_level = LogLevel.NONE
        # Otherwise a failing builtin (or one rego-cpp lacks) is silently undefined.
        interpreter.strict_built_in_errors = True
        for name, source in bundle.modules.items():
            interpreter.add_module(name, source)
        interpreter.add_data_json(data_json)
        rego_bundle = interpreter.build(None, entrypoints=[ENTRYPOINT, APPROVAL_ENTRYPOINT])
        ok = bool(rego_bundle.ok())
    except Exception as exc:
        problem = _describe(exc, bundle.modules)
        raise ConfigError(f"policy in {bundle.root} does not compile: {problem}") from exc
    if not ok:
        raise ConfigError(f"policy in {bundle.root} does not compile")
    entrypoints = {ENTRYPOINT} | ({APPROVAL_ENTRYPOINT} if _defines_approval(bundle) else set())
    return _Compiled(bundle, interpreter, rego_bundle, _input_setter(), frozenset(entrypoints))


def _defines_approval(bundle: PolicyBundle) -> bool:
    return any(
        _PACKAGE_GRANTLINE.search(source) and _APPROVAL_HEAD.search(source)
        for source in bundle.modules.values()
    )


def _data_json(bundle: PolicyBundle) -> str:
    try:
        # Canonical JSON, like the input, so that data and input strings compare as equal.
        return rfc8785.dumps(with_index(bundle.data, stored_form=_escape)).decode("utf-8")
    except ValueError as exc:
        raise ConfigError(f"policy data in {bundle.root} is not canonical JSON: {exc}") from exc


def _first_answer_problem(compiled: _Compiled, *, accept_allow_all: bool) -> str | None:
    # rego-cpp compiles some broken policies (an unknown function, recursion) and fails only
    # when they run, so a bundle must first answer an empty input, and answer it with a deny.
    try:
        raw = compiled.query({}, b"{}", ENTRYPOINT)
    except PolicyError as exc:
        return f"it fails on an empty input: {exc.message}"
    problem = decision_problem(raw)
    if problem is not None:
        return f"on an empty input, {problem}"
    if raw["allow"] is True and not accept_allow_all:
        return "it allows an empty input, so it would allow anything"
    if APPROVAL_ENTRYPOINT in compiled.entrypoints:
        return _first_approval_problem(compiled, accept_allow_all=accept_allow_all)
    return None


def _first_approval_problem(compiled: _Compiled, *, accept_allow_all: bool) -> str | None:
    # Undefined is let through: the rule may hold only for inputs shaped as the broker
    # sends them, and an undefined answer denies (NO_DECISION) like any other.
    try:
        raw = compiled.query({}, b"{}", APPROVAL_ENTRYPOINT)
    except PolicyError as exc:
        return f"its approval rule fails on an empty input: {exc.message}"
    if raw is None:
        return None
    problem = approval_problem(raw)
    if problem is not None:
        return f"on an empty input, its approval rule is malformed ({problem})"
    if raw["allow"] is True and not accept_allow_all:
        return "its approval rule allows an empty input, so it would let anyone approve"
    return None


def _read_output(text: str) -> Any:
    if text == "undefined":
        return None
    try:
        document = json.loads(text, object_pairs_hook=_refuse_duplicates)
    except (ValueError, RecursionError) as exc:
        # Malformed output or duplicate keys: what the policy meant cannot be known.
        raise PolicyError(f"policy engine returned unreadable output: {exc}") from exc
    expressions = document.get("expressions") if isinstance(document, dict) else None
    if not isinstance(expressions, list) or len(expressions) != 1:
        raise PolicyError("policy engine returned an unexpected result shape")
    return expressions[0]


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        raise ValueError("duplicate keys")
    return document


def _input_setter() -> Callable[[Any, Mapping[str, Any], bytes], None]:
    return _set_escaped_input if _escaped_input_is_faithful() else _set_json_input


def _set_json_input(interpreter: Any, policy_input: Mapping[str, Any], canonical: bytes) -> None:
    interpreter.set_input_term(canonical.decode("utf-8"))


def _set_escaped_input(interpreter: Any, policy_input: Mapping[str, Any], canonical: bytes) -> None:
    # Half the cost of parsing JSON text. rego-cpp takes strings as C strings, which a NUL
    # would cut short and a quote would break out of in the output: pre-escaping them gives
    # exactly what rego-cpp stores when it parses the canonical JSON text.
    handle = _capi.rego.regoNewInput()
    try:
        if _add_term(handle, policy_input) != _OK:
            raise PolicyError("the policy engine refused the input")
        _capi.rego_set_input(interpreter._impl, handle)
    finally:
        # rego-cpp copies the input when it is set, as regopy's own Input relies on.
        _capi.rego.regoFreeInput(handle)


_OK = 0
_lib = _capi.rego
_SCALARS: dict[type, Callable[[Any, Any], int]] = {
    bool: _lib.regoInputBoolean,
    int: _lib.regoInputInt,
    float: _lib.regoInputFloat,
}


def _add_term(handle: Any, value: Any) -> int:
    """Push ``value`` onto a rego-cpp input under construction; nonzero when a call failed.

    regopy's ``Input`` does the same through ABC checks and a buffer copy per string, which
    costs more than the policy itself; the input here is already known to be JSON data.
    """
    kind = type(value)
    if kind is str:
        return int(_lib.regoInputString(handle, _escape(value).encode("utf-8")))
    if kind is dict or isinstance(value, Mapping):
        failed = 0
        for key, item in value.items():
            failed |= _lib.regoInputString(handle, _escape(key).encode("utf-8"))
            failed |= _add_term(handle, item)
            failed |= _lib.regoInputObjectItem(handle)
        return int(failed | _lib.regoInputObject(handle, len(value)))
    if kind is list or kind is tuple:
        failed = 0
        for item in value:
            failed |= _add_term(handle, item)
        return int(failed | _lib.regoInputArray(handle, len(value)))
    if value is None:
        return int(_lib.regoInputNull(handle))
    scalar = _SCALARS.get(kind)
    if scalar is not None:
        return int(scalar(handle, value))
    raise PolicyError(f"policy input holds a {kind.__name__}, which is not JSON data")


def _escape(text: str) -> str:
    if _NEEDS_ESCAPE.search(text) is None:
        return text
    return rfc8785.dumps(text).decode("utf-8")[1:-1]


_PROBE = ('q"uote', "back\\slash", "nul\x00x", "ctl\n\x1fx", "é", "plain")
_PROBE_MODULE = "package grantline_probe\n\nresult := [input.s, input.s == data.probe]\n"


@functools.cache
def _escaped_input_is_faithful() -> bool:
    """Whether pre-escaped input round-trips and equals the same strings given as data."""
    try:
        interpreter = Interpreter()
        interpreter.log_level = LogLevel.NONE
        interpreter.add_module("probe.rego", _PROBE_MODULE)
        interpreter.add_data_json(rfc8785.dumps({"probe": list(_PROBE)}).decode())
        bundle = interpreter.build(None, entrypoints=["grantline_probe/result"])
        _set_escaped_input(interpreter, {"s": list(_PROBE)}, b"")
        output = interpreter.query_bundle_entrypoint(bundle, "grantline_probe/result")
        return bool(output.ok()) and _read_output(str(output)) == [list(_PROBE), True]
    # Any surprise means the JSON text path, slower but parsed by rego-cpp itself, is safer.
    except Exception:
        return False


def _describe(exc: Exception, sources: Mapping[str, str] | None = None) -> str:
    """The messages of a rego-cpp error, each with its ``file:line`` when it has one."""
    # rego-cpp reports errors as an s-expression of length-prefixed atoms.
    text = exc.doc if isinstance(exc, json.JSONDecodeError) else str(exc)
    raw = text.encode("utf-8")
    messages = []
    for match in _ERRORMSG.finditer(raw):
        message = _atom(raw, match.end(), int(match.group(1)))
        where = _location(raw, match.start(), sources or {})
        messages.append(f"{where}: {message}" if where else message)
    if messages:
        return "; ".join(dict.fromkeys(messages))
    if isinstance(exc, json.JSONDecodeError):
        # rego-cpp can print invalid JSON (it leaves some quotes unescaped): never guess.
        return f"the engine returned unreadable output ({exc.msg})"
    return text.strip()[:300] or type(exc).__name__


def _location(raw: bytes, before: int, sources: Mapping[str, str]) -> str:
    match = _ERROR_AT.search(raw, raw.rfind(b"(error ", 0, before), before)
    if match is None:
        return ""
    name = _atom(raw, match.end(), int(match.group(1)))
    offset = _ERROR_OFFSET.match(raw, match.end() + int(match.group(1)))
    if name not in sources or offset is None:
        return name
    line = sources[name].encode("utf-8")[: int(offset.group(1))].count(b"\n") + 1
    return f"{name}:{line}"


def _atom(raw: bytes, start: int, length: int) -> str:
    return raw[start : start + length].decode("utf-8", "replace")


def _node_errors(node: Any) -> str:
    try:
        messages = [
            rego_node_value(part._impl)
            for error in (node.at(i) for i in range(len(node)))
            for part in (error.at(j) for j in range(len(error)))
            if part.kind == NodeKind.ErrorMessage
        ]
    # The message is a courtesy: the deny stands without it.
    except Exception:
        messages = []
    return "; ".join(dict.fromkeys(str(m) for m in messages)) or "engine error"
