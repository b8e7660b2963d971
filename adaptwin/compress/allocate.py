"""Spend a parameter or time budget across layers and twins where it costs the least error.

Each unit (one twin of one attention, or one FFN matrix) offers options ``(rank, params,
error, seconds)``, ending with the dense original (rank None, error 0); the budget is in
``resource``, one of the two sizes. The predicted model error
is ``sum_u (gain_u * error_u)^2``: ``gain`` is the measured sensitivity of the model
output to that unit's own error (1 when no calibration data is given). A greedy pass cuts
where error per saved parameter is cheapest, then a refinement pass gives back any
rank step that the budget does not need, so the budget is met within one rank step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Sequence


@dataclass(frozen=True)
class Option:
    rank: int | None  # None: keep the dense original
    params: int
    error: float
    seconds: float = 0.0  # measured time per window (``latency.py``), for time budgets


@dataclass
class Unit:
    key: Hashable
    options: Sequence[Option]  # ascending params, last one dense
    gain: float = 1.0

    def cost(self, i: int) -> float:
        return (self.gain * self.options[i].error) ** 2


RESOURCES = ("params", "seconds")


def max_savings(units: Sequence[Unit], resource: str = "params") -> float:
    return sum(getattr(u.options[-1], resource) - min(getattr(o, resource) for o in u.options) for u in units)


def allocate(units: Sequence[Unit], target_savings: float, resource: str = "params") -> dict[Hashable, int | None]:
    """Choose one option per unit so that the savings in ``resource`` reach ``target_savings``
    at low error."""
    if resource not in RESOURCES:
        raise ValueError(f"resource must be one of {RESOURCES}")
    if target_savings > max_savings(units, resource):
        raise ValueError("budget cannot be met")  # callers explain why, with numbers
    size = [[getattr(o, resource) for o in u.options] for u in units]
    state = [len(u.options) - 1 for u in units]
    saved = 0
    while saved < target_savings:
        best = None
        for j, u in enumerate(units):
            for i in range(state[j]):
                d_save = size[j][state[j]] - size[j][i]
                if d_save <= 0:
                    continue
                ratio = (u.cost(i) - u.cost(state[j])) / d_save
                if best is None or ratio < best[0]:
                    best = (ratio, j, i, d_save)
        if best is None:
            break
        _, j, i, d_save = best
        state[j] = i
        saved += d_save
    # Refinement: undo the cuts the budget does not need, largest error reduction first.
    improved = True
    while improved:
        improved = False
        best = None
        for j, u in enumerate(units):
            for i in range(state[j] + 1, len(u.options)):
                d_save = size[j][i] - size[j][state[j]]
                gain = u.cost(state[j]) - u.cost(i)
                if saved - d_save >= target_savings and gain > 0 and (best is None or gain > best[0]):
                    best = (gain, j, i, d_save)
        if best is not None:
            _, j, i, d_save = best
            state[j] = i
            saved -= d_save
            improved = True
    return {u.key: u.options[state[j]].rank for j, u in enumerate(units)}
