"""The Prometheus text the metric primitives render, and the cap on label values."""

from __future__ import annotations

from grantline.observe.metrics import OTHER, Counter, Histogram, LabelValues, render


def test_a_counter_renders_help_type_and_one_line_per_series_in_order() -> None:
    counter = Counter("demo_total", "Demo things.", ("kind",))
    counter.inc(("b",))
    counter.inc(("a",), 2)
    counter.inc(("b",))

    assert render([counter]).splitlines() == [
        "# HELP demo_total Demo things.",
        "# TYPE demo_total counter",
        'demo_total{kind="a"} 2',
        'demo_total{kind="b"} 2',
    ]


def test_label_values_are_escaped_for_the_text_format() -> None:
    counter = Counter("demo_total", "Demo.", ("kind",))
    counter.inc(('say "hi"\\\n',))

    assert 'demo_total{kind="say \\"hi\\"\\\\\\n"} 1' in render([counter])


def test_a_histogram_counts_each_value_in_the_first_bucket_whose_bound_is_not_below_it() -> None:
    histogram = Histogram("demo_seconds", "Demo time.", ("op",), (0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 1.0, 3.0):
        histogram.observe(("x",), seconds)

    lines = render([histogram]).splitlines()

    assert lines[2:] == [
        'demo_seconds_bucket{op="x",le="0.1"} 2',
        'demo_seconds_bucket{op="x",le="1.0"} 4',
        'demo_seconds_bucket{op="x",le="+Inf"} 5',
        'demo_seconds_sum{op="x"} 4.65',
        'demo_seconds_count{op="x"} 5',
    ]
    assert histogram.count(("x",)) == 5


def test_a_touched_histogram_series_shows_zero_before_any_observation() -> None:
    histogram = Histogram("demo_seconds", "Demo time.", (), (1.0,))
    histogram.touch(())

    assert "demo_seconds_count 0" in render([histogram])
    assert 'demo_seconds_bucket{le="+Inf"} 0' in render([histogram])


def test_label_values_beyond_the_cap_or_not_identifiers_count_as_other() -> None:
    values = LabelValues(limit=2)

    assert values("rbac") == "rbac"
    assert values("approval") == "approval"
    assert values("third") == OTHER
    assert values("rbac") == "rbac"
    assert LabelValues(limit=5)("subject spiffe://x is not bound") == OTHER
    assert LabelValues(limit=5)("x" * 65) == OTHER
