"""Prometheus counters and a latency histogram, kept per process, in the text exposition format."""

from __future__ import annotations

import bisect
from collections import Counter

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

_responses: Counter[tuple[str, str, int]] = Counter()
_bucket_counts = [0] * (len(_BUCKETS) + 1)
_duration_sum = 0.0
_duration_count = 0


def observe(method: str, route: str, status: int, seconds: float) -> None:
    global _duration_sum, _duration_count  # noqa: PLW0603 — process-wide metric state
    _responses[(method, route, status)] += 1
    _bucket_counts[bisect.bisect_left(_BUCKETS, seconds)] += 1
    _duration_sum += seconds
    _duration_count += 1


def render_metrics() -> str:
    lines = [
        "# HELP grantline_http_responses_total HTTP responses by route and status.",
        "# TYPE grantline_http_responses_total counter",
    ]
    for (method, route, status), count in sorted(_responses.items()):
        lines.append(
            f'grantline_http_responses_total{{method="{method}",route="{route}",'
            f'status="{status}"}} {count}'
        )
    lines += [
        "# HELP grantline_http_request_duration_seconds Time to answer a request.",
        "# TYPE grantline_http_request_duration_seconds histogram",
    ]
    cumulative = 0
    for bound, count in zip((*_BUCKETS, float("inf")), _bucket_counts, strict=True):
        cumulative += count
        label = "+Inf" if bound == float("inf") else repr(bound)
        lines.append(f'grantline_http_request_duration_seconds_bucket{{le="{label}"}} {cumulative}')
    lines.append(f"grantline_http_request_duration_seconds_sum {_duration_sum}")
    lines.append(f"grantline_http_request_duration_seconds_count {_duration_count}")
    return "\n".join(lines) + "\n"
