"""Plots of a model-averaged meta-analysis (:class:`~ketabayes.result.bma_result.BMAResult`).

* :func:`plot_bma_mean` -- prior and model-averaged posterior of the average effect: a density for
  the models with an effect and a spike (an arrow whose height is the probability) at 0 for the
  models without;
* :func:`plot_model_probabilities` -- prior and posterior probability of every model;
* :func:`plot_weight_function` -- the model-averaged publication weight function of the
  selection models (posterior mean and 95% interval of the relative publication probability).
"""

from __future__ import annotations

import numpy as np
from scipy import special

from ketabayes.errors import KetabayesError

__all__ = ["plot_bma_mean", "plot_model_probabilities", "plot_weight_function", "weight_function_summary"]


def _ax(ax, figsize=(6, 3.5)):
    from ketabayes.reporting.plots import new_figure

    if ax is None:   # outside pyplot, like every ketabayes figure: Jupyter shows it once
        _, ax = new_figure(figsize)
    return ax


def plot_bma_mean(result, ax=None, grid=None):
    """Prior vs model-averaged posterior of the average effect (spike at 0 for "no effect").

    Examples
    --------
    >>> import pandas as pd, ketabayes as kb
    >>> from ketabayes.reporting.bma_plots import plot_bma_mean
    >>> res = kb.bma(pd.DataFrame({"yi": [0.3, 0.1, 0.5], "vi": [0.04, 0.09, 0.05]}),
    ...              prior_mu="normal(0, 1)", prior_tau="halfnormal(0.5)", seed=1)
    >>> fig = plot_bma_mean(res)
    """
    from ketabayes.marginals import MixtureMarginal
    from ketabayes.model.priors import Normal

    ax = _ax(ax)
    e = result.ensemble
    prior = Normal(**{k: v for k, v in result.settings["prior_mu"].items() if k in ("mu", "sigma")})
    trunc = result.settings["engine_settings"].get("mu_truncation")
    p_eff_prior = float(sum(f.spec.prior_prob for f in e.fits if f.spec.effect))
    p_eff_post = float(e.post_probs[[f.spec.effect for f in e.fits]].sum())
    post = e.averaged("mu", "effect")
    if grid is None:
        lo = min(float(post.ppf(np.array([0.001]))[0]), prior.mu - 3 * prior.sigma)
        hi = max(float(post.ppf(np.array([0.999]))[0]), prior.mu + 3 * prior.sigma)
        grid = np.linspace(lo, hi, 400)
    x = np.asarray(grid, dtype=float)
    dens_prior = np.exp(prior.logpdf(x))
    if trunc:
        side = x >= 0 if trunc == "positive" else x <= 0
        mass = special.ndtr(prior.mu / prior.sigma) if trunc == "positive" else special.ndtr(-prior.mu / prior.sigma)
        dens_prior = np.where(side, dens_prior / mass, 0.0)
    if isinstance(post, MixtureMarginal) or hasattr(post, "pdf"):
        dens_post = post.pdf(x)
    else:
        c = np.asarray(post.cdf(x), dtype=float)
        dens_post = np.gradient(c, x)
    ax.plot(x, p_eff_prior * dens_prior, ls="--", color="0.5", label="prior (effect models)")
    ax.plot(x, p_eff_post * dens_post, color="C0", label="posterior, model-averaged")
    top = max(float(np.max(p_eff_prior * dens_prior)), float(np.max(p_eff_post * dens_post)), 1e-12)
    for p, col, lab in ((1 - p_eff_prior, "0.5", "P(no effect), prior"), (1 - p_eff_post, "C3", "P(no effect | data)")):
        ax.annotate("", xy=(0, p * top), xytext=(0, 0), arrowprops={"arrowstyle": "-|>", "color": col, "lw": 2})
        ax.plot([], [], color=col, lw=2, label=f"{lab} = {p:.2f} (arrow)")
    ax.set_xlabel(f"average effect ({result.measure}, analysis scale)")
    ax.set_ylabel("density x P(effect); arrow: P(mu = 0) x max")
    ax.legend(fontsize=7, frameon=False)
    return ax.figure


def plot_model_probabilities(result, ax=None):
    """Horizontal bar chart of the prior and posterior probability of each model.

    Examples
    --------
    >>> import pandas as pd, ketabayes as kb
    >>> from ketabayes.reporting.bma_plots import plot_model_probabilities
    >>> res = kb.bma(pd.DataFrame({"yi": [0.3, 0.1, 0.5], "vi": [0.04, 0.09, 0.05]}),
    ...              prior_mu="normal(0, 1)", prior_tau="halfnormal(0.5)", seed=1)
    >>> fig = plot_model_probabilities(res)
    """
    tab = result.models
    ax = _ax(ax, figsize=(6, 0.25 * len(tab) + 1.2))
    ypos = np.arange(len(tab))
    ax.barh(ypos + 0.2, tab["prior_prob"], height=0.4, color="0.7", label="prior")
    ax.barh(ypos - 0.2, tab["post_prob"], height=0.4, color="C0", label="posterior")
    ax.set_yticks(ypos, tab["model"])
    ax.invert_yaxis()
    ax.set_xlabel("model probability")
    ax.legend(fontsize=7, frameon=False)
    return ax.figure


def weight_function_summary(result, p=None, prob=0.95):
    """Model-averaged relative publication probability ``omega(p)`` over the selection models.

    Returns a DataFrame with ``p`` (one-sided p-value in the direction of benefit), ``mean``,
    ``ci_low``, ``ci_high`` (weighted over the selection models' SMC draws by their posterior
    probabilities, renormalised among the selection models).
    """
    import pandas as pd

    from ketabayes.inference.bma_selection import WEIGHT_FUNCTIONS

    e = result.ensemble
    fits = [(f, q) for f, q in zip(e.fits, e.post_probs) if f.spec.bias in WEIGHT_FUNCTIONS and f.omega is not None]
    if not fits:
        raise KetabayesError("this result has no selection models: fit with bias='robma' or 'selection'")
    p = np.linspace(0.001, 0.999, 500) if p is None else np.asarray(p, dtype=float)
    rows = []
    total = sum(q for _, q in fits)
    vals, wts = [], []
    for f, q in fits:
        wf = WEIGHT_FUNCTIONS[f.spec.bias]
        pp = p if wf.sided == "one" else 2 * np.minimum(p, 1 - p)
        idx = np.searchsorted(np.asarray(wf.steps), pp, side="right")
        vals.append(f.omega[:, idx])                       # draws x p
        wts.append(np.full(f.omega.shape[0], q / total / f.omega.shape[0]))
    v = np.concatenate(vals, axis=0)
    w = np.concatenate(wts)
    a = (1 - prob) / 2
    for j, pj in enumerate(p):
        o = np.argsort(v[:, j])
        cw = np.cumsum(w[o])
        q = [v[o, j][min(np.searchsorted(cw, t), len(o) - 1)] for t in (a, 1 - a)]
        rows.append({"p": pj, "mean": float(w @ v[:, j]), "ci_low": q[0], "ci_high": q[1]})
    return pd.DataFrame(rows)


def plot_weight_function(result, ax=None, prob=0.95):
    """Plot the model-averaged weight function (see :func:`weight_function_summary`)."""
    df = weight_function_summary(result, prob=prob)
    ax = _ax(ax)
    ax.fill_between(df["p"], df["ci_low"], df["ci_high"], color="C0", alpha=0.25, step="post",
                    label=f"{prob:.0%} interval")
    ax.step(df["p"], df["mean"], where="post", color="C0", label="posterior mean")
    for c in (0.025, 0.05, 0.5):
        ax.axvline(c, color="0.8", lw=0.8)
    ax.set_xlabel("one-sided p-value (direction of benefit)")
    ax.set_ylabel("relative publication probability")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, frameon=False)
    return ax.figure
