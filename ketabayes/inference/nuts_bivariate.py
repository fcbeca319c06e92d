"""PyMC model of the bivariate benefit-harm meta-analysis, for a NUTS cross-check of the exact engine.

The trial effects are integrated out: each trial contributes the normal log-density of its
reported outcomes with covariance ``Sigma + S_i`` (2x2, or 1x1 for a trial reporting one outcome),
written out in closed form so that missing outcomes need no special PyMC machinery. The between-trial
correlation has the LKJ(eta) prior of a 2x2 correlation matrix: ``(rho + 1) / 2 ~ Beta(eta, eta)``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["build_bivariate"]


def build_bivariate(model):
    """Build the PyMC model of a :class:`~ketabayes.model.bivariate.BivariateModel` (no sampling).

    Variables: ``mu`` (outcome), ``tau`` (outcome), ``rho_between``; the likelihood is a ``pm.Potential``.
    """
    import pymc as pm
    import pytensor.tensor as pt

    if model.fixed:
        raise NotImplementedError("the NUTS cross-check is for the random-effects model")
    y, v = model.y, model.v
    o1, o2 = np.isfinite(y[:, 0]), np.isfinite(y[:, 1])
    both = (o1 & o2).astype(float)
    only1 = (o1 & ~o2).astype(float)
    only2 = (~o1 & o2).astype(float)
    y0, v0 = np.where(np.isfinite(y), y, 0.0), np.where(np.isfinite(v), v, 1.0)
    rw = model.rho_within
    with pm.Model(coords={"outcome": list(model.outcomes)}) as m:
        mu = pt.stack([p.to_pymc(f"mu_{o}") for p, o in zip(model.prior_mu, model.outcomes)])
        pm.Deterministic("mu", mu, dims="outcome")
        t1 = model.prior_tau[0].to_pymc(f"tau_{model.outcomes[0]}")
        t2 = model.prior_tau[1].to_pymc(f"tau_{model.outcomes[1]}")
        pm.Deterministic("tau", pt.stack([t1, t2]), dims="outcome")
        r01 = pm.Beta("rho01", model.rho_eta, model.rho_eta)
        rb = pm.Deterministic("rho_between", 2.0 * r01 - 1.0)
        s11 = t1**2 + v0[:, 0]
        s22 = t2**2 + v0[:, 1]
        s12 = rb * t1 * t2 + rw * np.sqrt(v0[:, 0] * v0[:, 1])
        d1, d2 = y0[:, 0] - mu[0], y0[:, 1] - mu[1]
        det = s11 * s22 - s12**2
        ll_both = -0.5 * (pt.log(det) + (s22 * d1**2 - 2 * s12 * d1 * d2 + s11 * d2**2) / det) - math.log(2 * math.pi)
        ll1 = -0.5 * (pt.log(s11) + d1**2 / s11 + math.log(2 * math.pi))
        ll2 = -0.5 * (pt.log(s22) + d2**2 / s22 + math.log(2 * math.pi))
        pm.Potential("likelihood", pt.sum(both * ll_both + only1 * ll1 + only2 * ll2))
    return m
