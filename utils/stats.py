"""Statistics over seeds: mean and sample standard deviation, Student t quantiles, paired gains with their
confidence intervals. Plain Python (no SciPy): the quantile inverts the t distribution's CDF numerically.
"""
from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Sequence

__all__ = ["mean_std", "t_quantile", "mean_interval", "paired_gain", "seeds_to_exclude_zero"]


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (None for fewer than 2 values)."""
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _t_pdf(x: float, df: int) -> float:
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log_c - (df + 1) / 2 * math.log1p(x * x / df))


def _t_cdf_above_zero(x: float, df: int, steps: int = 4000) -> float:
    """P(0 <= T <= x) for x >= 0, by Simpson's rule on the substitution x = tan(u), which keeps the
    integrand smooth and bounded even for heavy tails (df = 1)."""
    upper = math.atan(x)
    h = upper / steps
    total = 0.0
    for i in range(steps + 1):
        u = i * h
        f = _t_pdf(math.tan(u), df) / math.cos(u) ** 2
        total += f * (1 if i in (0, steps) else 4 if i % 2 else 2)
    return total * h / 3


@functools.lru_cache(maxsize=None)
def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t distribution with ``df`` degrees of freedom (``p`` in (0.5, 1)).

    Args:
        p: the probability, e.g. 0.975 for a two-sided 95% interval.
        df: degrees of freedom (at least 1).
    """
    if not 0.5 < p < 1 or df < 1:
        raise ValueError(f"t_quantile needs 0.5 < p < 1 and df >= 1, got p={p}, df={df}")
    lo, hi = 0.0, 1.0
    while 0.5 + _t_cdf_above_zero(hi, df) < p:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        if 0.5 + _t_cdf_above_zero(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def mean_interval(values: Sequence[float], level: float = 0.95) -> dict:
    """The mean of ``values`` (one per seed) and its Student t confidence interval.

    Returns:
        ``{"mean": m, "std": s, "ci95": [lo, hi]}`` (interval and std None for fewer than 2 values).
    """
    mean, std = mean_std(values)
    ci = None
    if std is not None:
        half = t_quantile(1 - (1 - level) / 2, len(values) - 1) * std / math.sqrt(len(values))
        ci = [mean - half, mean + half]
    return {"mean": mean, "std": std, "ci95": ci}


def paired_gain(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> dict:
    """The gain ``a - b`` paired by seed: its mean and a Student t confidence interval.

    Args:
        a, b: one value per seed, in the same seed order.
        level: the interval's coverage.

    Returns:
        ``{"mean": m, "std": s, "ci95": [lo, hi]}`` (interval and std None for fewer than 2 pairs).
    """
    if len(a) != len(b):
        raise ValueError(f"paired values need one per seed on both sides, got {len(a)} and {len(b)}")
    return mean_interval([x - y for x, y in zip(a, b)], level)


def seeds_to_exclude_zero(mean: float | None, std: float | None, level: float = 0.95,
                          most: int = 1000) -> int | None:
    """How many seeds a paired gain needs before its interval excludes 0, if its mean and the spread of its
    per-seed differences stay as measured: the least n >= 2 with t(n - 1) * std / sqrt(n) < |mean|. None when
    the mean is 0 (or unknown) or more than ``most`` seeds would be needed."""
    if mean is None or std is None or mean == 0:
        return None
    # t > z for every n, so no n below (z * std / mean)^2 can do: start there
    z = statistics.NormalDist().inv_cdf(1 - (1 - level) / 2)
    for n in range(max(2, int((z * std / abs(mean)) ** 2)), most + 1):
        if t_quantile(1 - (1 - level) / 2, n - 1) * std / math.sqrt(n) < abs(mean):
            return n
    return None
