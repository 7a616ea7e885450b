"""Counters and histograms kept per process, rendered in the Prometheus text format.

No client library: a series is a dict entry, an observation a bisect and three additions,
so measuring stays far below the cost of what is measured. Label values come from small,
known sets; ``LabelValues`` caps any set a policy can grow.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Iterable, Sequence

OTHER = "other"

Labels = tuple[str, ...]

# Seconds. Policy decisions take tens of microseconds to milliseconds; a Vault call or a
# log write takes milliseconds to seconds.
FAST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
CALL_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

_LABEL_TEXT = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


class LabelValues:
    """At most ``limit`` distinct values of one label; any further value, and any value that
    is not a short identifier, counts as ``other``. Keeps a policy's free text out of the
    series set, whatever the policy returns."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) >= self._limit or not _LABEL_TEXT.fullmatch(value):
            return OTHER
        self._seen.add(value)
        return value


class Counter:
    def __init__(self, name: str, help_text: str, label_names: Sequence[str]) -> None:
        self.name = name
        self._help = help_text
        self._label_names = tuple(label_names)
        self._values: dict[Labels, int] = {}
        self._lock = threading.Lock()

    def inc(self, labels: Labels, amount: int = 1) -> None:
        # Locked: a policy engine that waits on the network is timed from worker threads.
        with self._lock:
            self._values[labels] = self._values.get(labels, 0) + amount

    def value(self, labels: Labels) -> int:
        return self._values.get(labels, 0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self._help}", f"# TYPE {self.name} counter"]
        with self._lock:
            values = sorted(self._values.items())
        for labels, value in values:
            lines.append(f"{self.name}{_braces(self._label_names, labels)} {value}")
        return lines


class _Series:
    __slots__ = ("buckets", "count", "sum")

    def __init__(self, size: int) -> None:
        self.buckets = [0] * size
        self.sum = 0.0
        self.count = 0


class Histogram:
    def __init__(
        self,
        name: str,
        help_text: str,
        label_names: Sequence[str],
        buckets: Sequence[float],
    ) -> None:
        self.name = name
        self._help = help_text
        self._label_names = tuple(label_names)
        self._bounds = tuple(buckets)
        self._series: dict[Labels, _Series] = {}
        self._lock = threading.Lock()

    def observe(self, labels: Labels, seconds: float) -> None:
        # ``le`` is inclusive: a value equal to a bound belongs to that bound's bucket.
        slot = bisect.bisect_left(self._bounds, seconds)
        with self._lock:
            series = self._series.get(labels)
            if series is None:
                series = self._series[labels] = _Series(len(self._bounds) + 1)
            series.buckets[slot] += 1
            series.sum += seconds
            series.count += 1

    def touch(self, labels: Labels) -> None:
        """Show the series at zero before its first observation."""
        with self._lock:
            if labels not in self._series:
                self._series[labels] = _Series(len(self._bounds) + 1)

    def count(self, labels: Labels) -> int:
        series = self._series.get(labels)
        return series.count if series is not None else 0

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self._help}", f"# TYPE {self.name} histogram"]
        names = (*self._label_names, "le")
        with self._lock:
            copied = [(k, list(v.buckets), v.sum, v.count) for k, v in self._series.items()]
        for labels, buckets, total, count in sorted(copied):
            cumulative = 0
            for bound, in_bucket in zip((*self._bounds, None), buckets, strict=True):
                cumulative += in_bucket
                le = "+Inf" if bound is None else repr(bound)
                lines.append(f"{self.name}_bucket{_braces(names, (*labels, le))} {cumulative}")
            braces = _braces(self._label_names, labels)
            lines.append(f"{self.name}_sum{braces} {total!r}")
            lines.append(f"{self.name}_count{braces} {count}")
        return lines


def render(metrics: Iterable[Counter | Histogram]) -> str:
    lines = [line for metric in metrics for line in metric.render()]
    return "\n".join(lines) + "\n"


def _braces(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    pairs = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True))
    return "{" + pairs + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# -- HTTP ---------------------------------------------------------------------------------------

HTTP_RESPONSES = Counter(
    "grantline_http_responses_total",
    "HTTP responses by route and status.",
    ("method", "route", "status"),
)
HTTP_DURATION = Histogram(
    "grantline_http_request_duration_seconds",
    "Time to answer a request.",
    (),
    (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
HTTP_DURATION.touch(())


def observe_http(method: str, route: str, status: int, seconds: float) -> None:
    # The route template, never the path: ids in paths would make a series per request.
    HTTP_RESPONSES.inc((method, route, str(status)))
    HTTP_DURATION.observe((), seconds)


def render_http_metrics() -> str:
    return render((HTTP_RESPONSES, HTTP_DURATION))


# -- the broker's own metrics ------------------------------------------------------------------

ACCESS_REQUESTS = Counter(
    "grantline_access_requests_total",
    "Access requests that reached the broker, by outcome, deciding rule and kind of reason.",
    ("outcome", "rule", "reason"),
)
ISSUANCE_SECONDS = Histogram(
    "grantline_issuance_duration_seconds",
    "Time to mint one credential at its issuer, by credential type and outcome.",
    ("credential_type", "outcome"),
    CALL_BUCKETS,
)
POLICY_SECONDS = Histogram(
    "grantline_policy_evaluation_duration_seconds",
    "Time to evaluate one policy query, by entrypoint (decision or approval).",
    ("entrypoint",),
    FAST_BUCKETS,
)
LOG_APPEND_SECONDS = Histogram(
    "grantline_log_append_duration_seconds",
    "Time from asking to append a group of records to its durable write, by outcome.",
    ("outcome",),
    CALL_BUCKETS,
)
LOG_RECORDS = Counter(
    "grantline_log_records_appended_total",
    "Records durably appended to the signed log by this process.",
    (),
)

BROKER_METRICS: tuple[Counter | Histogram, ...] = (
    ACCESS_REQUESTS,
    POLICY_SECONDS,
    ISSUANCE_SECONDS,
    LOG_APPEND_SECONDS,
    LOG_RECORDS,
)


def render_broker_metrics() -> str:
    """The broker's request, policy, issuance and log metrics, for ``/metrics``."""
    return render(BROKER_METRICS)
