"""Frequentist reference analyses equal to metafor's.

``uni``
    :func:`rma` / :func:`rma_all`: ``rma.uni`` with every tau^2 estimator, z / t / HKSJ tests,
    moderators, Q-profile intervals and prediction intervals.
``binary``
    :func:`rma_mh` and :func:`rma_peto`: Mantel-Haenszel (OR, RR, RD) and Peto's odds ratio.
``diagnostics``
    :func:`leave1out`, :func:`influence` and :func:`subgroup` (separate pooled estimates and the test
    for subgroup differences).
``small_study``
    :func:`regtest` (Egger), :func:`ranktest` (Begg) and :func:`trimfill`.
"""

from ketabayes.inference.frequentist.uni import REVMAN, RmaResult, rma, rma_all

__all__ = ["REVMAN", "RmaResult", "rma", "rma_all"]
