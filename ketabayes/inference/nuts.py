"""NUTS inference for the normal-normal model with PyMC.

Parameterisation: the study effects are integrated out of the likelihood,
``y_i ~ N(mu, v_i + tau**2)``, so NUTS explores only ``(mu, tau)`` -- no funnel.
(With PyMC's default ``target_accept=0.8`` an occasional divergence near
``tau = 0`` remains; :meth:`RandomEffectsModel.fit` uses 0.95.) The study effects and the new-study effect are then
sampled *inside the same model* from their exact conditionals through
standard-normal auxiliaries::

    theta_i   = E[theta_i | mu, tau, y] + sd[theta_i | mu, tau, y] * z_i,   z_i ~ N(0, 1)
    theta_new = mu + tau * z_new,                                           z_new ~ N(0, 1)

which leaves the joint posterior of ``(mu, tau, theta, theta_new)`` exactly the
model's, with only independent standard normals added to the sampled space.
"""

from __future__ import annotations

import numpy as np

from ketabayes import dims
from ketabayes.model.priors import Prior

__all__ = ["build_normal_normal", "sample_nuts"]


def build_normal_normal(yi, vi, studies, prior_mu: Prior, prior_tau: Prior | None, *, fixed: bool = False):
    """Build the PyMC model (no sampling).

    Returns
    -------
    pymc.Model
    """
    import pymc as pm

    y = np.asarray(yi, dtype=float)
    v = np.asarray(vi, dtype=float)
    coords = {dims.STUDY: list(map(str, studies))}
    with pm.Model(coords=coords) as model:
        v_data = pm.Data("vi", v, dims=dims.STUDY)
        mu = prior_mu.to_pymc(dims.MU)
        if fixed:
            pm.Normal("y", mu=mu, sigma=pm.math.sqrt(v_data), observed=y, dims=dims.STUDY)
            pm.Deterministic(dims.THETA, mu + 0.0 * v_data, dims=dims.STUDY)
            pm.Deterministic(dims.THETA_NEW, mu)
        else:
            tau = prior_tau.to_pymc(dims.TAU)
            t2 = tau**2
            pm.Normal("y", mu=mu, sigma=pm.math.sqrt(v_data + t2), observed=y, dims=dims.STUDY)
            z = pm.Normal("z", 0.0, 1.0, dims=dims.STUDY)
            b = v_data / (v_data + t2)
            cmean = (1.0 - b) * y + b * mu
            csd = pm.math.sqrt((1.0 - b) * v_data)
            pm.Deterministic(dims.THETA, cmean + csd * z, dims=dims.STUDY)
            z_new = pm.Normal("z_new", 0.0, 1.0)
            pm.Deterministic(dims.THETA_NEW, mu + tau * z_new)
    return model


def sample_nuts(model, *, seed: int, draws: int = 1000, tune: int = 1000, chains: int = 4,
                cores: int | None = None, nuts: dict | None = None, progressbar: bool | None = None, **kwargs):
    """Run ``pm.sample`` with the seed always set; sampler options pass through unchanged.

    ``progressbar=None`` shows PyMC's progress bar in terminals and notebooks
    (:func:`ketabayes._compat.progress_default`).

    Returns
    -------
    xarray.DataTree
    """
    import pymc as pm

    from ketabayes._compat import progress_default

    if progressbar is None:
        progressbar = progress_default()
    with model:
        tree = pm.sample(
            draws=draws, tune=tune, chains=chains, cores=cores if cores is not None else min(chains, 2),
            random_seed=seed, progressbar=progressbar, nuts=dict(nuts or {}),
            compute_convergence_checks=False, quiet=not progressbar, **kwargs,
        )
    return tree
