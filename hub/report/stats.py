"""The board pack's recent-trend markers. Pure functions: no I/O.

Public Health England's Fingertips marks an indicator's "recent trend" from
its five most recent points, and these markers follow it (docs/report.md cites
the method and its source):

* **counts** (and every non-proportion): a weighted least-squares line through
  the points (time 1..5), each weighted by 1 / variance, with the variance taken
  from the value's 95% confidence interval as ((upper - lower) / 3.92) ** 2. For a
  count we take Byar's approximation to the Poisson interval (a method of PHE's
  indicator tooling for counts and rates). The test statistic is
  (slope / standard error) ** 2;
* **proportions**: the chi-squared test for trend (Cochran-Armitage) on the
  five numerators and denominators.

The trend is significant when the statistic exceeds the chi-squared value with
one degree of freedom at 99.8% confidence (9.5495) *and* the slope keeps its
sign when each point in turn is left out (Fingertips' check that a single
outlier does not make the trend). Published counts are rounded, so a count's
variance here also carries the rounding error's, (round_to ** 2 - 1) / 12.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from statistics import NormalDist

POINTS = 5
CONFIDENCE = 0.998
#: Chi-squared (1 df) at 99.8%: the square of the two-sided normal quantile.
CHI2_CRITICAL = NormalDist().inv_cdf(1 - (1 - CONFIDENCE) / 2) ** 2
_Z95 = NormalDist().inv_cdf(0.975)

#: The slope (or score) of the points kept, by index: for the leave-one-out check.
SlopeOf = Callable[[Sequence[int]], float]


class Marker(StrEnum):
    INCREASING = "increasing"
    DECREASING = "decreasing"
    NO_CHANGE = "no significant change"
    CANNOT = "cannot be calculated"


class Polarity(StrEnum):
    """Whether a rise is good news: decides the marker's colour, never the test."""

    LOWER_IS_BETTER = "lower is better"
    HIGHER_IS_BETTER = "higher is better"
    NO_JUDGEMENT = "no judgement"


class Judgement(StrEnum):
    """The marker's colour class in the pack."""

    BETTER = "better"
    WORSE = "worse"
    NO_JUDGEMENT = "no-judgement"
    NO_CHANGE = "no-change"
    CANNOT = "cannot"


@dataclass(frozen=True)
class Trend:
    marker: Marker
    statistic: float | None = None
    reason: str = ""

    def judgement(self, polarity: Polarity) -> Judgement:
        if self.marker is Marker.CANNOT:
            return Judgement.CANNOT
        if self.marker is Marker.NO_CHANGE:
            return Judgement.NO_CHANGE
        if polarity is Polarity.NO_JUDGEMENT:
            return Judgement.NO_JUDGEMENT
        rising_is_good = polarity is Polarity.HIGHER_IS_BETTER
        good = (self.marker is Marker.INCREASING) == rising_is_good
        return Judgement.BETTER if good else Judgement.WORSE

    def describe(self, polarity: Polarity) -> str:
        """'increasing (getting worse)', 'no significant change', ..."""
        if self.marker is Marker.CANNOT:
            return f"{self.marker}: {self.reason}"
        words = {Judgement.BETTER: "getting better", Judgement.WORSE: "getting worse"}
        extra = words.get(self.judgement(polarity))
        return f"{self.marker} ({extra})" if extra else str(self.marker)


def _window(points: Sequence[int | None]) -> list[int] | str:
    """The last five points, or why there is no trend to test."""
    if len(points) < POINTS:
        return f"fewer than {POINTS} periods published"
    last = points[-POINTS:]
    if any(p is None for p in last):
        return f"a point in the last {POINTS} periods is suppressed or not published"
    return [p for p in last if p is not None]


def byar_interval(count: int) -> tuple[float, float]:
    """Byar's approximation to the 95% Poisson confidence interval of `count`."""
    upper_n = count + 1
    upper = upper_n * (1 - 1 / (9 * upper_n) + _Z95 / (3 * math.sqrt(upper_n))) ** 3
    if count == 0:
        return 0.0, upper
    lower = count * (1 - 1 / (9 * count) - _Z95 / (3 * math.sqrt(count))) ** 3
    return lower, upper


def _wls(points: Sequence[tuple[int, float, float]]) -> tuple[float, float]:
    """(slope, chi-squared) of y on t, weights w: points are (t, y, w)."""
    s1 = sum(w for _, _, w in points)
    st = sum(w * t for t, _, w in points)
    sy = sum(w * y for _, y, w in points)
    sty = sum(w * t * y for t, y, w in points)
    stt = sum(w * t * t for t, _, w in points)
    det = s1 * stt - st * st
    slope = (s1 * sty - st * sy) / det
    return slope, slope * slope / (s1 / det)


def _same_sign_without_each(slope_of: SlopeOf) -> bool:
    """Fingertips' outlier check: the slope keeps its sign with each point left out.

    A zero slope counts as no sign (Fingertips counts it as positive), so a flat
    subset never supports a trend.
    """
    everything = list(range(POINTS))
    slopes = [slope_of(everything)]
    slopes += [slope_of([i for i in everything if i != out]) for out in everything]
    return all(s > 0 for s in slopes) or all(s < 0 for s in slopes)


def count_trend(points: Sequence[int | None], round_to: int = 1) -> Trend:
    """The recent trend of a series of counts (None: suppressed or not published)."""
    window = _window(points)
    if isinstance(window, str):
        return Trend(Marker.CANNOT, reason=window)
    rounding = (round_to * round_to - 1) / 12
    weighted = []
    for t, count in enumerate(window, start=1):
        lower, upper = byar_interval(count)
        weighted.append((t, float(count), 1 / (((upper - lower) / (2 * _Z95)) ** 2 + rounding)))
    slope, chi2 = _wls(weighted)
    stable = _same_sign_without_each(lambda keep: _wls([weighted[i] for i in keep])[0])
    return _verdict(slope, chi2, stable)


def _trend_score(
    numerators: Sequence[int], denominators: Sequence[int], keep: Sequence[int]
) -> float:
    """Cochran-Armitage score sum(r t) - R sum(n t) / N: its sign is the trend's direction."""
    big_r = sum(numerators[i] for i in keep)
    big_n = sum(denominators[i] for i in keep)
    rt = sum(numerators[i] * (i + 1) for i in keep)
    nt = sum(denominators[i] * (i + 1) for i in keep)
    return rt - big_r * nt / big_n


def proportion_trend(numerators: Sequence[int | None], denominators: Sequence[int | None]) -> Trend:
    """The recent trend of numerators / denominators (chi-squared test for trend)."""
    r_window, n_window = _window(numerators), _window(denominators)
    if isinstance(r_window, str) or isinstance(n_window, str):
        reason = r_window if isinstance(r_window, str) else n_window
        return Trend(Marker.CANNOT, reason=str(reason))
    if any(n <= 0 for n in n_window):
        return Trend(Marker.CANNOT, reason="a period in the last five has no denominator")
    big_r, big_n = sum(r_window), sum(n_window)
    if big_r == 0 or big_r == big_n:
        return Trend(Marker.NO_CHANGE, statistic=0.0)
    times = range(1, POINTS + 1)
    nt = sum(n * t for n, t in zip(n_window, times, strict=True))
    ntt = sum(n * t * t for n, t in zip(n_window, times, strict=True))
    rt = sum(r * t for r, t in zip(r_window, times, strict=True))
    chi2 = (
        big_n * (big_n * rt - big_r * nt) ** 2 / (big_r * (big_n - big_r) * (big_n * ntt - nt**2))
    )
    score = _trend_score(r_window, n_window, range(POINTS))
    stable = _same_sign_without_each(lambda keep: _trend_score(r_window, n_window, keep))
    return _verdict(score, chi2, stable)


def _verdict(slope: float, chi2: float, stable: bool) -> Trend:
    if stable and chi2 > CHI2_CRITICAL and slope != 0:
        return Trend(Marker.INCREASING if slope > 0 else Marker.DECREASING, chi2)
    return Trend(Marker.NO_CHANGE, chi2)
