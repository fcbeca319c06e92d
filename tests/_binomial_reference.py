"""Dense references for the binomial-logit model, written independently of the engines.

Used by ``test_exact_binomial.py``, ``test_binomial_effects.py`` and ``test_binomial_regression.py``.
Nothing here uses the engines' machinery (no Gauss-Hermite or Gauss-Legendre rules, no splines, no
normal-kernel mixtures): trapezoid / Simpson rules on dense uniform grids, linear interpolation of log
densities, and the substitution ``x = m + s z`` (``z`` on a uniform grid against the standard normal
density) for every integral against a normal density, so that no integrand has a kink or a spike as a
scale parameter goes to 0.

Data: six small magnesium trials (Egger et al. 2001; ``kb.load_dataset("magnesium_mi")``), among them
Bertschat 1989 with no death on magnesium, plus one SIMULATED double-zero trial (0/30 vs 0/30; the
bundled data have none).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import integrate, interpolate, special, stats

import ketabayes as kb

SMALL = ["Morton 1984", "Abraham 1987", "Bertschat 1989", "Ceremuzynski 1989", "Pereira 1990", "Shechter 1989"]


def magnesium() -> pd.DataFrame:
    mg = kb.load_dataset("magnesium_mi")
    return mg.assign(study=mg["study"] + " " + mg["year"].astype(str))


def sparse_data() -> pd.DataFrame:
    mg = magnesium()
    sub = mg[mg.study.isin(SMALL)][["study", "ai", "n1i", "ci", "n2i"]]
    dz = pd.DataFrame({"study": ["SIMULATED double-zero"], "ai": [0], "n1i": [30], "ci": [0], "n2i": [30]})
    return pd.concat([sub, dz], ignore_index=True)


def log_binom(k, n, logit):
    return (special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)
            - k * np.logaddexp(0.0, -logit) - (n - k) * np.logaddexp(0.0, logit))


def trial_log_lik(df, base_mean, base_sd):
    """``log f_i(theta)`` of each trial on a uniform grid: trapezoid rule over a dense grid of baselines."""
    th = np.linspace(-14.0, 12.0, 2601)                                   # step 0.01
    b = np.linspace(base_mean - 8 * base_sd, base_mean + 8 * base_sd, 1201)
    B, T = np.meshgrid(b, th, indexing="ij")
    prior_b = stats.norm.logpdf(B, base_mean, base_sd)
    logf = []
    for a, n1, c, n2 in df[["ai", "n1i", "ci", "n2i"]].to_numpy(float):
        ll = log_binom(a, n1, B + T / 2) + log_binom(c, n2, B - T / 2) + prior_b
        top = ll.max()
        logf.append(np.log(integrate.trapezoid(np.exp(ll - top), b, axis=0)) + top)
    return th, np.array(logf)


def _convolve(x, grid, log_g, scale, z, phi):
    """``log int exp(log_g(x - scale z)) phi(z) dz`` for ``x (J,)`` (``log_g`` linearly interpolated on ``grid``)."""
    lg = np.interp(x[:, None] - scale * z[None, :], grid, log_g)
    top = lg.max()
    return np.log(integrate.trapezoid(np.exp(lg - top) * phi, z, axis=1)) + top


def theta_reference(th, logf, i, mu_sd, tau_sd):
    """CDF of trial ``i``'s own log OR in the model without groupings, on a grid ``(theta, F)``.

    ``p(theta, tau) ~ p(tau) f_i(theta) int g_tau(theta - tau z) phi(z) dz`` with
    ``g_tau(mu) = N(mu; 0, mu_sd**2) prod_(j != i) h_j(mu, tau)`` and ``h_j(mu, tau) = int f_j(mu + tau z) phi(z) dz``;
    ``tau ~ halfnormal(tau_sd)``, trapezoid rules throughout.
    """
    mu = np.linspace(-8.0, 5.0, 521)
    tau = np.linspace(0.0, 6.0 * tau_sd, 81)
    z = np.linspace(-8.0, 8.0, 121)
    phi = stats.norm.pdf(z)
    X = mu[None, :, None] + tau[:, None, None] * z
    logg = stats.norm.logpdf(mu, 0.0, mu_sd)[None, :] + 0.0 * tau[:, None]
    for j, lf in enumerate(logf):
        if j != i:
            logg = logg + np.log(integrate.trapezoid(np.exp(np.interp(X, th, lf)) * phi, z, axis=-1))
    theta = np.linspace(-8.0, 5.0, 651)
    lq = np.stack([_convolve(theta, mu, logg[t], tau[t], z, phi) for t in range(tau.size)])
    lp = lq + np.interp(theta, th, logf[i])[None, :] + stats.halfnorm.logpdf(tau, scale=tau_sd)[:, None]
    pt = integrate.trapezoid(np.exp(lp - lp.max()), tau, axis=0)
    return theta, integrate.cumulative_simpson(pt, x=theta, initial=0.0) / integrate.trapezoid(pt, theta)


def grouped_effect_reference(th, logf, groups, mu_sd, tau_sd, sd_sd, trial, fine: bool = False):
    """CDFs of a trial's own effect and of its group's effect in the one-grouping model.

    ``gamma_g ~ N(mu, sd**2)``, ``theta_i ~ N(gamma_g(i), tau**2)``; ``mu ~ N(0, mu_sd**2)``, ``tau`` and ``sd``
    half-normal. With ``G_g(gamma; tau)`` the product of group ``g``'s trials' ``h_j(gamma, tau)`` and
    ``r(mu; sd, tau) = N(mu; 0, mu_sd**2) prod_(g' != g) int G_g'(mu + sd z; tau) phi(z) dz``::

        p(gamma, tau)  ~ p(tau) G_g(gamma; tau) int p(sd) int r(gamma - sd z; sd, tau) phi(z) dz dsd
        p(theta, tau)  ~ p(tau) f_i(theta) int q(theta - tau z; tau) phi(z) dz,   q = the same with G_g / h_i

    Returns ``(gamma, F_group, theta, F_trial)``.
    """
    nt, nm, ns, nz, ng, nth = (81, 161, 81, 97, 481, 1301) if fine else (41, 81, 41, 65, 241, 651)
    z = np.linspace(-8.0, 8.0, nz)
    phi = stats.norm.pdf(z)
    tau, mu, sd = np.linspace(0.0, 2.5, nt), np.linspace(-5.0, 3.0, nm), np.linspace(0.0, 2.5, ns)
    gam = np.linspace(-9.0, 6.0, ng)
    X = gam[None, :, None] + tau[:, None, None] * z
    g_t = groups[trial]
    logG = {g: np.zeros((nt, ng)) for g in set(groups)}
    log_minus = np.zeros((nt, ng))
    for j, (lf, g) in enumerate(zip(logf, groups)):
        lh = np.log(integrate.trapezoid(np.exp(np.interp(X, th, lf)) * phi, z, axis=-1))
        logG[g] += lh
        if g == g_t and j != trial:
            log_minus += lh
    M, S = np.meshgrid(mu, sd, indexing="ij")
    G = M[..., None] + S[..., None] * z
    logr = stats.norm.logpdf(M, 0.0, mu_sd)[None] + 0.0 * tau[:, None, None]        # (tau, mu, sd)
    for g, lg in logG.items():
        if g != g_t:
            vals = np.stack([np.exp(np.interp(G, gam, lg[t])) * phi for t in range(nt)])
            logr = logr + np.log(integrate.trapezoid(vals, z, axis=-1))
    top = logr.max()
    w_sd = stats.halfnorm.pdf(sd, scale=sd_sd) * (sd[1] - sd[0])       # trapezoid weights in sd
    w_sd[[0, -1]] *= 0.5
    log_prior_g = np.empty((nt, ng))
    for t in range(nt):
        acc = sum(w_sd[s] * np.exp(_convolve(gam, mu, logr[t, :, s] - top, sd[s], z, phi)) for s in range(ns))
        log_prior_g[t] = np.log(acc)
    lt = stats.halfnorm.logpdf(tau, scale=tau_sd)[:, None]
    lpg = log_prior_g + logG[g_t] + lt
    pg = integrate.trapezoid(np.exp(lpg - lpg.max()), tau, axis=0)
    theta = np.linspace(-8.0, 5.0, nth)
    lq = np.stack([_convolve(theta, gam, log_prior_g[t] + log_minus[t], tau[t], z, phi) for t in range(nt)])
    lpt = lq + np.interp(theta, th, logf[trial])[None, :] + lt
    pt = integrate.trapezoid(np.exp(lpt - lpt.max()), tau, axis=0)
    return (gam, integrate.cumulative_simpson(pg, x=gam, initial=0.0) / integrate.trapezoid(pg, gam),
            theta, integrate.cumulative_simpson(pt, x=theta, initial=0.0) / integrate.trapezoid(pt, theta))


def grouped_joint_reference(th, logf, groups, mu_sd, tau_sd, sd_sd, a="a", b="b"):
    """``P(gamma_a < gamma_b)`` and the mean and sd of ``gamma_a - gamma_b`` in the one-grouping model.

    Given ``(tau, mu, sd)`` the group effects are independent with densities ``N(gamma; mu, sd**2) G_g(gamma; tau)``
    (``gamma = mu + sd z``, ``z`` on a uniform grid); the joint density of ``(tau, mu, sd)`` on a dense tensor
    grid (Simpson's rule); the pair's moments and ``P(z_a < z_b)`` from the conditionals.
    """
    z = np.linspace(-8.0, 8.0, 65)
    phi = stats.norm.pdf(z)
    tau, mu, sd = np.linspace(0.0, 2.5, 41), np.linspace(-5.0, 3.0, 81), np.linspace(0.0, 2.5, 41)
    gam = np.linspace(-9.0, 6.0, 241)
    X = gam[None, :, None] + tau[:, None, None] * z
    logG = {g: np.zeros((tau.size, gam.size)) for g in set(groups)}
    for lf, g in zip(logf, groups):
        logG[g] += np.log(integrate.trapezoid(np.exp(np.interp(X, th, lf)) * phi, z, axis=-1))
    M, S = np.meshgrid(mu, sd, indexing="ij")
    Gm = M[..., None] + S[..., None] * z
    lp = (stats.halfnorm.logpdf(tau, scale=tau_sd)[:, None, None] + stats.norm.logpdf(M, 0.0, mu_sd)[None]
          + stats.halfnorm.logpdf(S, scale=sd_sd)[None])
    q = {}
    for g, lg in logG.items():
        vals = np.stack([np.exp(np.interp(Gm, gam, lg[t])) * phi for t in range(tau.size)])
        mass = integrate.trapezoid(vals, z, axis=-1)
        q[g] = vals / mass[..., None]
        lp = lp + np.log(mass)
    p = np.exp(lp - lp.max())

    def expect(f):
        return float(integrate.simpson(integrate.simpson(integrate.simpson(p * f, x=sd, axis=2), x=mu, axis=1),
                                       x=tau))

    norm = expect(np.ones_like(p))
    ez = {g: integrate.trapezoid(q[g] * z, z, axis=-1) for g in (a, b)}
    ez2 = {g: integrate.trapezoid(q[g] * z**2, z, axis=-1) for g in (a, b)}
    Sx = S[None]
    d1 = Sx * (ez[a] - ez[b])                                   # E[gamma_a - gamma_b | tau, mu, sd]
    d2 = Sx**2 * (ez2[a] - 2.0 * ez[a] * ez[b] + ez2[b])        # E[(gamma_a - gamma_b)^2 | ...]
    mean = expect(d1) / norm
    F_b = integrate.cumulative_simpson(q[b], x=z, axis=-1, initial=0.0)
    p_ab = expect(integrate.trapezoid(q[a] * (1.0 - F_b), z, axis=-1)) / norm
    return p_ab, mean, float(np.sqrt(expect(d2) / norm - mean**2))


def trial_likelihood(a, n1, c, n2, m, tau, base_mean, base_sd):
    """``log int int Bin(a | n1, expit(b + t/2)) Bin(c | n2, expit(b - t/2)) N(b; base) N(t; m, tau^2) db dt``
    with scipy.stats.binom, on a dense grid in ``(b, z)``, ``t = m + tau z``."""
    b = np.linspace(base_mean - 9.0 * base_sd, base_mean + 9.0 * base_sd, 2001)
    z = np.linspace(-9.0, 9.0, 601)
    B, Z = np.meshgrid(b, z, indexing="ij")
    t = m + tau * Z
    f = (stats.binom.pmf(a, n1, special.expit(B + t / 2)) * stats.binom.pmf(c, n2, special.expit(B - t / 2))
         * stats.norm.pdf(B, base_mean, base_sd) * stats.norm.pdf(Z))
    return float(np.log(integrate.trapezoid(integrate.trapezoid(f, z, axis=1), b)))


def regression_reference(th, logf, x, mu_sd, g_sd, tau_sd, trial=None, *, mu=(-3.5, 1.5), gamma=(-0.8, 0.6),
                         n=(41, 161, 161, 1501)):
    """The one-moderator model ``theta_i ~ N(mu + gamma x_i, tau**2)`` on a dense ``(tau, mu, gamma)`` grid.

    Each trial's ``log h_j(m, tau)`` is tabulated on a grid of ``m`` (``z`` substitution; read off by scipy's
    cubic splines: linear interpolation leaves noise of ~1e-3 in the density); the joint density
    is the priors (``mu ~ N(0, mu_sd**2)``, ``gamma ~ N(0, g_sd**2)``, ``tau ~ halfnormal(tau_sd)``) times
    ``prod_j h_j(mu + gamma x_j, tau)`` on the tensor grid. Returns a dict with the CDFs ``(grid, F)`` of
    ``mu``, ``gamma`` and the prediction ``mu + N(0, tau**2)``, the mean of ``tau`` and, for ``trial = i``,
    the CDF of the trial's own effect: ``p(theta, tau) ~ p(tau) f_i(theta) int g_tau(theta - tau z) phi(z) dz``
    with ``g_tau(m) = int N(m - gamma x_i; 0, mu_sd**2) N(gamma; 0, g_sd**2) prod_(j != i) h_j(m + gamma (x_j - x_i), tau) dgamma``.
    """
    nt, nmu, ng, nm = n
    z = np.linspace(-8.0, 8.0, 65)
    phi = stats.norm.pdf(z)
    tau = np.linspace(0.0, 6.0 * tau_sd, nt)
    m = np.linspace(-9.0, 6.0, nm)
    logh = np.stack([np.log(integrate.trapezoid(np.exp(np.interp(m[None, :, None] + tau[:, None, None] * z, th, lf))
                                                * phi, z, axis=-1)) for lf in logf])         # (k, tau, m)
    mus, gs = np.linspace(*mu, nmu), np.linspace(*gamma, ng)
    M, Gm = np.meshgrid(mus, gs, indexing="ij")
    lp = (stats.halfnorm.logpdf(tau, scale=tau_sd)[:, None, None] + stats.norm.logpdf(M, 0.0, mu_sd)[None]
          + stats.norm.logpdf(Gm, 0.0, g_sd)[None])
    splines = [interpolate.CubicSpline(m, logh[j], axis=1) for j in range(len(x))]   # (linear: aliasing noise)
    for j, xj in enumerate(x):
        lp = lp + splines[j](M + Gm * xj)
    p = np.exp(lp - lp.max())
    p_t = integrate.trapezoid(integrate.trapezoid(p, gs, axis=2), mus, axis=1)
    norm = integrate.trapezoid(p_t, tau)
    out = {"tau_mean": float(integrate.trapezoid(p_t * tau, tau) / norm)}
    p_mu = integrate.trapezoid(integrate.trapezoid(p, gs, axis=2), tau, axis=0) / norm
    p_g = integrate.trapezoid(integrate.trapezoid(p, mus, axis=1), tau, axis=0) / norm
    out["mu"] = (mus, integrate.cumulative_simpson(p_mu, x=mus, initial=0.0))
    out["gamma"] = (gs, integrate.cumulative_simpson(p_g, x=gs, initial=0.0))
    # prediction: P(mu + tau z < y | tau) = int phi(z) F_(mu | tau)(y - tau z) dz
    y = np.linspace(*mu, 2 * nmu)
    pm_t = integrate.trapezoid(p, gs, axis=2)                                     # (tau, mu)
    F_t = integrate.cumulative_simpson(pm_t, x=mus, axis=1, initial=0.0)
    mass = F_t[:, -1:]
    pred = np.stack([integrate.trapezoid(np.interp(y[:, None] - tau[t] * z[None, :], mus, F_t[t] / mass[t]) * phi, z,
                                         axis=1) for t in range(nt)])
    out["predictive"] = (y, integrate.trapezoid(pred * mass[:, 0, None], tau, axis=0) / norm)
    if trial is not None:
        xi = x[trial]
        mg = np.linspace(*mu, 2 * nmu)
        G2 = gs[None, :]
        acc = (stats.norm.logpdf(mg[:, None] - G2 * xi, 0.0, mu_sd) + stats.norm.logpdf(G2, 0.0, g_sd))[None]
        for j, xj in enumerate(x):
            if j != trial:
                acc = acc + splines[j](mg[:, None] + G2 * (xj - xi))        # (tau, m, gamma)
        top = acc.max()
        lg = np.log(integrate.trapezoid(np.exp(acc - top), gs, axis=2)) + top
        theta = np.linspace(-8.0, 5.0, 651)
        lq = np.stack([_convolve(theta, mg, lg[t], tau[t], z, phi) for t in range(nt)])
        lpt = lq + np.interp(theta, th, logf[trial])[None, :] + stats.halfnorm.logpdf(tau, scale=tau_sd)[:, None]
        pt = integrate.trapezoid(np.exp(lpt - lpt.max()), tau, axis=0)
        out["trial"] = (theta, integrate.cumulative_simpson(pt, x=theta, initial=0.0) / integrate.trapezoid(pt, theta))
    return out


def mixed_reference(th, logf, groups, x, mu_sd, g_sd, tau_sd, sd_sd, n=(31, 41, 61, 31)):
    """The model with one grouping and one moderator, ``theta_i ~ N(gamma_g(i) + beta x_i, tau**2)``,
    ``gamma_g ~ N(mu, sd**2)``, on a dense ``(tau, beta, mu, sd)`` tensor grid (Simpson's rule).

    Each trial's ``log h_j(m, tau)`` is tabulated on a grid of ``m`` (``z`` substitution, cubic splines in
    ``m``); given ``(tau, beta)`` a group's likelihood of its effect, ``G_g(w) = prod_(j in g) h_j(w + beta x_j)``,
    on a grid of ``w``; given ``(mu, sd)``, ``int N(w; mu, sd**2) G_g(w) dw = int phi(z) G_g(mu + sd z) dz``
    (trapezoid in ``z``, ``log G_g`` linearly interpolated). Priors: ``mu ~ N(0, mu_sd**2)``,
    ``beta ~ N(0, g_sd**2)``, ``tau ~ halfnormal(tau_sd)``, ``sd ~ halfnormal(sd_sd)``. Returns the CDFs
    ``(grid, F)`` of ``mu`` and ``beta``, each group's ``P(gamma_g < 0)`` and the means of ``tau`` and ``sd``.
    """
    nt, nb, nmu, ns = n
    z = np.linspace(-8.0, 8.0, 49)
    phi = stats.norm.pdf(z)
    tau = np.linspace(0.0, 6.0 * tau_sd, nt)
    beta = np.linspace(-5.0 * g_sd, 5.0 * g_sd, nb)
    mu = np.linspace(-5.0, 3.0, nmu)
    sd = np.linspace(0.0, 6.0 * sd_sd, ns)
    m = np.linspace(-22.0, 18.0, 1601)
    w = np.linspace(-9.0, 6.0, 301)
    logh = np.stack([np.log(integrate.trapezoid(np.exp(np.interp(m[None, :, None] + tau[:, None, None] * z, th, lf))
                                                * phi, z, axis=-1)) for lf in logf])         # (k, tau, m)
    splines = [interpolate.CubicSpline(m, logh[j], axis=1) for j in range(len(x))]
    M, S = np.meshgrid(mu, sd, indexing="ij")
    Wz = M[..., None] + S[..., None] * z                                                   # (mu, sd, z)
    names = sorted(set(groups))
    lp = np.zeros((nt, nb, nmu, ns))
    below = {g: np.zeros((nt, nb, nmu, ns)) for g in names}
    for b, bb in enumerate(beta):
        logG = {g: np.zeros((nt, w.size)) for g in names}
        for j, (xj, g) in enumerate(zip(x, groups)):
            logG[g] += splines[j](w + bb * xj)
        for g in names:
            for t in range(nt):
                vals = np.exp(np.interp(Wz, w, logG[g][t])) * phi
                L = integrate.trapezoid(vals, z, axis=-1)
                below[g][t, b] = integrate.trapezoid(vals * (Wz < 0.0), z, axis=-1) / L
                lp[t, b] += np.log(L)
    lp += (stats.halfnorm.logpdf(tau, scale=tau_sd)[:, None, None, None]
           + stats.norm.logpdf(beta, 0.0, g_sd)[None, :, None, None]
           + stats.norm.logpdf(mu, 0.0, mu_sd)[None, None, :, None]
           + stats.halfnorm.logpdf(sd, scale=sd_sd)[None, None, None, :])
    p = np.exp(lp - lp.max())

    def over(f, keep=None):
        axes = [(0, tau), (1, beta), (2, mu), (3, sd)]
        out = p * f
        for ax, grid in reversed(axes):
            if ax != keep:
                out = integrate.simpson(out, x=grid, axis=ax)
        return out

    norm = float(over(1.0))
    p_mu, p_b = over(1.0, keep=2) / norm, over(1.0, keep=1) / norm
    return {"mu": (mu, integrate.cumulative_simpson(p_mu, x=mu, initial=0.0)),
            "beta": (beta, integrate.cumulative_simpson(p_b, x=beta, initial=0.0)),
            "below": {g: float(over(below[g])) / norm for g in names},
            "tau_mean": float(over(tau[:, None, None, None])) / norm,
            "sd_mean": float(over(sd[None, None, None, :])) / norm}


def nested_reference(th, logf, child, parent, mu_sd, tau_sd, sdp_sd, sdc_sd, n=(25, 25, 61, 25)):
    """Two nested groupings: ``theta_i ~ N(gamma_d(i), tau**2)``, ``gamma_d ~ N(kappa_c(d), sdc**2)``,
    ``kappa_c ~ N(mu, sdp**2)``, on a dense ``(tau, sdc, mu, sdp)`` tensor grid (Simpson's rule).

    ``child[i]``: trial ``i``'s inner level; ``parent[d]``: inner level ``d``'s outer level. Given ``tau`` each
    inner level's likelihood ``H_d(gamma)`` (product of its trials' ``int phi(z) f_i(gamma + tau z) dz``) on a grid;
    given ``sdc`` each outer level's ``K_c(kappa) = prod_(d in c) int phi(z) H_d(kappa + sdc z) dz`` on the same grid;
    given ``(mu, sdp)`` ``int phi(z) K_c(mu + sdp z) dz`` (trapezoid rules in ``z``, log tables linearly
    interpolated). Priors: ``mu ~ N(0, mu_sd**2)``, the three SDs half-normal. Returns the CDF ``(grid, F)`` of ``mu``,
    ``P(< 0)`` of every outer and inner level's effect and the means of ``tau``, ``sdp`` and ``sdc``.
    """
    nt, nc, nm, npar = n
    z = np.linspace(-8.0, 8.0, 49)
    phi = stats.norm.pdf(z)
    tau, sdc = np.linspace(0.0, 6.0 * tau_sd, nt), np.linspace(0.0, 6.0 * sdc_sd, nc)
    mu, sdp = np.linspace(-5.0, 3.0, nm), np.linspace(0.0, 6.0 * sdp_sd, npar)
    g = np.linspace(-10.0, 7.0, 341)
    child, parent = np.asarray(child), np.asarray(parent)
    D, C = parent.size, int(parent.max()) + 1
    M, S = np.meshgrid(mu, sdp, indexing="ij")
    Kz = M[..., None] + S[..., None] * z                                               # (mu, sdp, z)
    lp = np.zeros((nt, nc, nm, npar))
    below_c = np.zeros((C, nt, nc, nm, npar))
    below_d = np.zeros((D, nt, nc, nm, npar))
    Gz = g[:, None] + z[None, :]
    for t in range(nt):
        logH = np.zeros((D, g.size))
        for i, lf in enumerate(logf):
            logH[child[i]] += np.log(integrate.trapezoid(np.exp(np.interp(g[:, None] + tau[t] * z, th, lf)) * phi,
                                                         z, axis=-1))
        for s in range(nc):
            X = g[:, None] + sdc[s] * z[None, :]
            logK = np.zeros((C, g.size))
            B = np.zeros((D, g.size))
            for d in range(D):
                vals = np.exp(np.interp(X, g, logH[d])) * phi
                Q = integrate.trapezoid(vals, z, axis=-1)
                B[d] = integrate.trapezoid(vals * (X < 0.0), z, axis=-1) / Q
                logK[parent[d]] += np.log(Q)
            for c in range(C):
                vals = np.exp(np.interp(Kz, g, logK[c])) * phi
                L = integrate.trapezoid(vals, z, axis=-1)
                lp[t, s] += np.log(L)
                below_c[c, t, s] = integrate.trapezoid(vals * (Kz < 0.0), z, axis=-1) / L
                for d in np.flatnonzero(parent == c):
                    below_d[d, t, s] = integrate.trapezoid(vals * np.interp(Kz, g, B[d]), z, axis=-1) / L
    del Gz
    lp += (stats.halfnorm.logpdf(tau, scale=tau_sd)[:, None, None, None]
           + stats.halfnorm.logpdf(sdc, scale=sdc_sd)[None, :, None, None]
           + stats.norm.logpdf(mu, 0.0, mu_sd)[None, None, :, None]
           + stats.halfnorm.logpdf(sdp, scale=sdp_sd)[None, None, None, :])
    p = np.exp(lp - lp.max())

    def over(f, keep=None):
        out = p * f
        for ax, grid in reversed(list(enumerate((tau, sdc, mu, sdp)))):
            if ax != keep:
                out = integrate.simpson(out, x=grid, axis=ax)
        return out

    norm = float(over(1.0))
    p_mu = over(1.0, keep=2) / norm
    return {"mu": (mu, integrate.cumulative_simpson(p_mu, x=mu, initial=0.0)),
            "below_outer": [float(over(b)) / norm for b in below_c],
            "below_inner": [float(over(b)) / norm for b in below_d],
            "tau_mean": float(over(tau[:, None, None, None])) / norm,
            "sdc_mean": float(over(sdc[None, :, None, None])) / norm,
            "sdp_mean": float(over(sdp[None, None, None, :])) / norm}
