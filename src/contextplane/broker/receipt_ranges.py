"""The offset ranges one read receipt names: sorted, disjoint, none adjoining another.

A consumer that reads on is one range; one that seeks adds a range per place it read.
A receipt keeps at most `limits.AUDIT_RECEIPT_RANGES_MAX`: past it the two ranges with the
smallest gap between them become the range covering both, and the receipt is coarse (it
then names offsets in that gap the consumer may not have received: it over-reports, never
under-reports, the safe side for forensics)."""

from __future__ import annotations

from bisect import bisect_left, bisect_right

Range = tuple[int, int]  # first and last offset, both included


def add_range(ranges: list[Range], first: int, last: int) -> None:
    """Add [first, last] to `ranges`, merged with every range it overlaps or adjoins."""
    if ranges:
        tail_first, tail_last = ranges[-1]
        if tail_first <= first <= tail_last + 1:  # reading on: the common case
            if last > tail_last:
                ranges[-1] = (tail_first, last)
            return
    low = bisect_left(ranges, first - 1, key=lambda r: r[1])
    high = bisect_right(ranges, last + 1, key=lambda r: r[0])
    if low < high:
        first = min(first, ranges[low][0])
        last = max(last, ranges[high - 1][1])
    ranges[low:high] = [(first, last)]


def coarsen(ranges: list[Range], ranges_max: int) -> bool:
    """Merge the closest neighbours until at most `ranges_max` remain; True if any were."""
    merged = False
    while len(ranges) > max(ranges_max, 1):
        closest = min(range(len(ranges) - 1), key=lambda i: ranges[i + 1][0] - ranges[i][1])
        ranges[closest : closest + 2] = [(ranges[closest][0], ranges[closest + 1][1])]
        merged = True
    return merged


def covers(ranges: list[Range], offset: int) -> bool:
    index = bisect_right(ranges, offset, key=lambda r: r[0]) - 1
    return index >= 0 and ranges[index][1] >= offset
