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

__all__ = ["build_normal_normal", "normal_normal_data", "normal_normal_key", "sample_nuts"]


def build_normal_normal(yi, vi, studies, prior_mu: Prior, prior_tau: Prior | None, *, fixed: bool = False):
    """Build the PyMC model (no sampling).

    The estimates ``yi``, the variances ``vi`` and the parameters of the priors are
    ``pm.Data`` containers (names: :func:`normal_normal_data`), so one compiled model
    can be re-run for another variant of the same structure with ``pm.set_data`` /
    :class:`~ketabayes.inference.compiled_cache.CompiledModelCache`.

    Returns
    -------
    pymc.Model
    """
    import pymc as pm

    from ketabayes.inference.compiled_cache import prior_rv

    y = np.asarray(yi, dtype=float)
    v = np.asarray(vi, dtype=float)
    coords = {dims.STUDY: list(map(str, studies))}
    with pm.Model(coords=coords) as model:
        v_data = pm.Data("vi", v, dims=dims.STUDY)
        y_data = pm.Data("yi", y, dims=dims.STUDY)
        mu = prior_rv(prior_mu, dims.MU)
        if fixed:
            pm.Normal("y", mu=mu, sigma=pm.math.sqrt(v_data), observed=y_data, dims=dims.STUDY)
            pm.Deterministic(dims.THETA, mu + 0.0 * v_data, dims=dims.STUDY)
            pm.Deterministic(dims.THETA_NEW, mu)
        else:
            tau = prior_rv(prior_tau, dims.TAU)
            t2 = tau**2
            pm.Normal("y", mu=mu, sigma=pm.math.sqrt(v_data + t2), observed=y_data, dims=dims.STUDY)
            z = pm.Normal("z", 0.0, 1.0, dims=dims.STUDY)
            b = v_data / (v_data + t2)
            cmean = (1.0 - b) * y_data + b * mu
            csd = pm.math.sqrt((1.0 - b) * v_data)
            pm.Deterministic(dims.THETA, cmean + csd * z, dims=dims.STUDY)
            z_new = pm.Normal("z_new", 0.0, 1.0)
            pm.Deterministic(dims.THETA_NEW, mu + tau * z_new)
    return model


def normal_normal_data(yi, vi, prior_mu: Prior, prior_tau: Prior | None) -> dict:
    """Values of the ``pm.Data`` containers of :func:`build_normal_normal` for one variant."""
    from ketabayes.inference.compiled_cache import prior_data

    out = {"yi": np.asarray(yi, dtype=float), "vi": np.asarray(vi, dtype=float), **prior_data(prior_mu, dims.MU)}
    if prior_tau is not None:
        out.update(prior_data(prior_tau, dims.TAU))
    return out


def normal_normal_key(k: int, prior_mu: Prior, prior_tau: Prior | None, fixed: bool = False) -> tuple:
    """Structure key of :func:`build_normal_normal`: what one compiled model is valid for."""
    return ("normal_normal", int(k), bool(fixed), prior_mu.kind, prior_tau.kind if prior_tau is not None else None)


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

    from ketabayes._compat import ieee_pytensor, progress_default

    ieee_pytensor()
    if progressbar is None:
        progressbar = progress_default()
    with model:
        tree = pm.sample(
            draws=draws, tune=tune, chains=chains, cores=cores if cores is not None else min(chains, 2),
            random_seed=seed, progressbar=progressbar, nuts=dict(nuts or {}),
            compute_convergence_checks=False, quiet=not progressbar, **kwargs,
        )
    return tree
