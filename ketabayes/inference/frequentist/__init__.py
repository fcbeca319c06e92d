"""Frequentist reference analyses equal to metafor's.

``uni``
    :func:`rma` / :func:`rma_all`: ``rma.uni`` with every tau^2 estimator, z / t / HKSJ tests,
    moderators, Q-profile intervals and prediction intervals; ``REVMAN`` is RevMan's current default.
``binary``
    :func:`rma_mh` and :func:`rma_peto`: Mantel-Haenszel (OR, RR, RD) and Peto's odds ratio.
``diagnostics``
    :func:`leave1out`, :func:`influence` and :func:`subgroup` (separate pooled estimates and the test
    for subgroup differences).
``small_study``
    :func:`regtest` (Egger), :func:`ranktest` (Begg) and :func:`trimfill` (Duval & Tweedie).
"""

from ketabayes.inference.frequentist.binary import MhResult, rma_mh, rma_peto
from ketabayes.inference.frequentist.diagnostics import SubgroupResult, influence, leave1out, subgroup
from ketabayes.inference.frequentist.small_study import (
    RanktestResult,
    RegtestResult,
    TrimfillResult,
    ranktest,
    regtest,
    trimfill,
)
from ketabayes.inference.frequentist.uni import REVMAN, RmaResult, rma, rma_all

__all__ = [
    "REVMAN",
    "MhResult",
    "RanktestResult",
    "RegtestResult",
    "RmaResult",
    "SubgroupResult",
    "TrimfillResult",
    "influence",
    "leave1out",
    "ranktest",
    "regtest",
    "rma",
    "rma_all",
    "rma_mh",
    "rma_peto",
    "subgroup",
    "trimfill",
]
