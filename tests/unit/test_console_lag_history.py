"""The console's lag ring (console/lag_history.py), its SVG chart (console/lag_chart.py) and
its list pages' bound (console/views.py)."""

from __future__ import annotations

from collections.abc import Iterator
from xml.etree import ElementTree

from contextplane.console.lag_chart import LEGEND_ROWS_MAX, lag_chart_svg
from contextplane.console.lag_history import LagHistory, LagSeries, TopicPartition
from contextplane.console.sampler import TopicRates, topic_rates
from contextplane.console.views import PAGE_SIZE, paginate

SVG = "{http://www.w3.org/2000/svg}"


def test_a_series_keeps_its_latest_samples_oldest_first() -> None:
    history = LagHistory(max_groups=4, max_partitions=4, samples=3)
    for i in range(5):
        history.record(1000 * i, {"g": {("t", 0): 10 * i}})
    series = history.series("g")
    assert series is not None
    assert series.times_ms == [2000, 3000, 4000]
    assert series.lags == {("t", 0): [20, 30, 40]}


def test_a_partition_first_seen_later_has_no_lag_before_it() -> None:
    history = LagHistory(max_groups=4, max_partitions=4, samples=4)
    history.record(1, {"g": {("t", 0): 5}})
    history.record(2, {"g": {("t", 0): 6, ("t", 1): 7}})
    history.record(3, {"g": {("t", 1): 8}})
    series = history.series("g")
    assert series is not None
    assert series.lags == {("t", 0): [5, 6, None], ("t", 1): [None, 7, 8]}


def test_groups_partitions_and_samples_are_bounded() -> None:
    groups, partitions, samples = 3, 5, 7
    history = LagHistory(groups, partitions, samples)
    many = {f"g{i}": {("t", p): p for p in range(50)} for i in range(20)}
    for now in range(100):
        history.record(now, many)
    assert history.values_kept() == groups * partitions * samples
    assert history.groups_not_kept == 20 - groups
    kept = [g for g in many if history.series(g) is not None]
    assert len(kept) == groups
    series = history.series(kept[0])
    assert series is not None
    assert len(series.lags) == partitions
    assert all(len(values) == samples for values in series.lags.values())
    assert len(series.times_ms) == samples


def test_a_group_left_out_of_a_sample_is_forgotten_and_frees_its_place() -> None:
    history = LagHistory(max_groups=1, max_partitions=4, samples=4)
    history.record(1, {"a": {("t", 0): 1}, "b": {("t", 0): 2}})
    assert history.series("a") is not None and history.series("b") is None
    history.record(2, {"b": {("t", 0): 3}})
    assert history.series("a") is None
    series = history.series("b")
    assert series is not None and series.lags == {("t", 0): [3]}


class _CountedLags(dict[TopicPartition, int]):
    """A sample's lags that count how often the ring walks all of them."""

    walks = 0

    def __iter__(self) -> Iterator[TopicPartition]:
        self.walks += 1
        return super().__iter__()


def test_a_group_of_100000_partitions_is_walked_only_while_its_ring_has_room() -> None:
    history = LagHistory(max_groups=2, max_partitions=64, samples=4)
    lags = _CountedLags({(f"t{p % 7}", p): p for p in range(100_000)})
    for now in range(4):
        history.record(now, {"g": lags})
    # The first sample picks the first 64 partitions in order; later ones read only those
    # (sorting 100,000 partitions at every sample held the event loop for 50-90 ms).
    assert lags.walks == 1
    series = history.series("g")
    assert series is not None
    assert list(series.lags) == sorted(lags)[:64]
    assert all(values == [tp[1]] * 4 for tp, values in series.lags.items())


def test_a_ring_with_room_takes_the_first_new_partitions_in_order() -> None:
    history = LagHistory(max_groups=2, max_partitions=3, samples=2)
    history.record(1, {"g": {("b", 0): 1}})
    history.record(2, {"g": {("c", 0): 2, ("a", 1): 3, ("a", 0): 4, ("b", 0): 5}})
    series = history.series("g")
    assert series is not None
    assert list(series.lags) == [("a", 0), ("a", 1), ("b", 0)]
    assert series.lags[("a", 0)] == [None, 4]


def _parse(markup: str) -> ElementTree.Element:
    return ElementTree.fromstring(markup)


def test_the_chart_has_one_series_per_partition_scaled_to_the_largest_lag() -> None:
    series = LagSeries(
        times_ms=[0, 5000, 10000],
        lags={("orders", 0): [0, 50, 100], ("orders", 1): [10, None, 20]},
    )
    svg = _parse(lag_chart_svg(series))
    groups = svg.findall(f"{SVG}g")
    assert [(g.get("data-topic"), g.get("data-partition")) for g in groups] == [
        ("orders", "0"),
        ("orders", "1"),
    ]
    [line] = groups[0].findall(f"{SVG}polyline")
    points = [tuple(map(float, p.split(","))) for p in (line.get("points") or "").split()]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    assert xs == sorted(xs) and len(set(xs)) == 3
    assert ys[0] > ys[1] > ys[2]  # lag grows: the line rises (SVG's y points down)
    # The gap in partition 1 breaks its line: two single points, no polyline across it.
    assert groups[1].findall(f"{SVG}polyline") == []
    assert len(groups[1].findall(f"{SVG}circle")) == 2
    labels = [t.text for t in svg.findall(f"{SVG}text")]
    assert "100" in labels and "orders-0" in labels and "orders-1" in labels


def test_names_in_the_chart_are_escaped() -> None:
    hostile = '<script>alert(1)</script>"'
    series = LagSeries(times_ms=[0, 1], lags={(hostile, 0): [1, 2]})
    markup = str(lag_chart_svg(series))
    assert "<script>" not in markup
    svg = _parse(markup)  # still well-formed XML
    [group] = svg.findall(f"{SVG}g")
    assert group.get("data-topic") == hostile


def test_the_legend_is_bounded() -> None:
    lags: dict[tuple[str, int], list[int | None]] = {("t", p): [p] for p in range(40)}
    svg = _parse(lag_chart_svg(LagSeries(times_ms=[0], lags=lags)))
    assert len(svg.findall(f"{SVG}g")) == 40
    texts = [t.text or "" for t in svg.findall(f"{SVG}text")]
    assert sum(1 for t in texts if t.startswith("t-")) == LEGEND_ROWS_MAX
    assert f"and {40 - LEGEND_ROWS_MAX} more" in texts


def test_list_pages_are_bounded_and_numbers_out_of_range_are_clamped() -> None:
    rows = list(range(1201))
    first = paginate(rows, 1)
    assert (first.rows, first.number, first.count, first.total) == (rows[:500], 1, 3, 1201)
    assert paginate(rows, 3).rows == rows[1000:]
    assert paginate(rows, 99).number == 3
    assert paginate(rows, 0).number == 1
    empty = paginate([], 1)
    assert (empty.rows, empty.count) == ([], 1)
    assert PAGE_SIZE == 500


def test_topic_rates_are_per_second_between_two_readings() -> None:
    before = {"a": (10, 1000, 500), "gone": (1, 1, 1)}
    after = {"a": (30, 3000, 500), "new": (5, 50, 0)}
    rates = topic_rates(before, after, 2.0)
    assert rates == {"a": TopicRates(10.0, 1000.0, 0.0), "new": TopicRates(2.5, 25.0, 0.0)}
