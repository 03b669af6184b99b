"""The paper's claims, each decided by a paired difference over the same readings and its 95% interval.

A claim compares two arms measured on the *same* conditioning readings (or the same test images):
RadGazeGen against text only, both ControlNets against one, real + generated training images against
real ones. Its estimate is the difference ``first - second`` of one metric with a paired interval
(:func:`~radgazegen.evaluation.stats.bootstrap` over rows for per-row metrics,
:func:`~radgazegen.evaluation.stats.half_sample` for set distances). The verdict is read off the
interval and the direction the paper claims:

* **supported**: the whole interval lies on the claimed side of 0;
* **not supported**: the whole interval lies on the other side (the data contradict the claim);
* **undecided at this preset**: the interval contains 0 (or there is none).

Two marginal intervals that overlap decide nothing; only the paired difference does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from radgazegen.evaluation.stats import Estimate

LOWER, HIGHER = "lower", "higher"
SUPPORTED, NOT_SUPPORTED, UNDECIDED = "supported", "not supported", "undecided at this preset"
COLUMNS = ("protocol", "claim", "metric", "comparison", "better", "difference", "low", "high", "n", "interval",
           "verdict")  # fmt: skip


def verdict(estimate: Estimate, better: str, threshold: float = 0.0) -> str:
    """:data:`SUPPORTED`, :data:`NOT_SUPPORTED` or :data:`UNDECIDED` for an estimate whose ``better`` side of
    ``threshold`` (0 for a difference; e.g. 2 for a ratio that must reach 2x) is the claim's."""
    if better not in (LOWER, HIGHER):
        raise ValueError(f"better must be {LOWER!r} or {HIGHER!r}, got {better!r}")
    if not (math.isfinite(estimate.low) and math.isfinite(estimate.high)):
        return UNDECIDED
    favourable = estimate.high < threshold if better == LOWER else estimate.low > threshold
    unfavourable = estimate.low > threshold if better == LOWER else estimate.high < threshold
    return SUPPORTED if favourable else NOT_SUPPORTED if unfavourable else UNDECIDED


@dataclass(frozen=True)
class Claim:
    """One claim: ``metric`` of arm ``first`` minus arm ``second``, which the paper says is ``better`` (lower/higher)."""

    protocol: str
    claim: str
    metric: str
    first: str
    second: str
    better: str
    estimate: Estimate
    interval: str  # how the interval was made, e.g. "paired bootstrap over 32 readings (500)"

    @property
    def verdict(self) -> str:
        return verdict(self.estimate, self.better)

    def sentence(self) -> str:
        """The one-line verdict, generated from the numbers."""
        e = self.estimate
        return (f"{self.verdict}: {self.metric} {self.first} − {self.second} = {e.value:+.3f} "
                f"[{e.low:+.3f}, {e.high:+.3f}] ({self.better} is better)")  # fmt: skip


def claims_frame(claims: Sequence[Claim]) -> pd.DataFrame:
    """The claims as a table (one row each, :data:`COLUMNS`), as the chapters save and the results page shows it."""
    rows = [
        (c.protocol, c.claim, c.metric, f"{c.first} − {c.second}", c.better, c.estimate.value, c.estimate.low,
         c.estimate.high, c.estimate.n, c.interval, c.verdict)
        for c in claims
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=list(COLUMNS))
