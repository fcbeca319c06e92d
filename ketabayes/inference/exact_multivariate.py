r"""Exact posterior of the multivariate normal random-effects model (multi-arm trials, time points).

Model (trial ``i`` contributes a vector ``y_i`` of ``d_i`` estimates)::

    y_i | theta_i ~ N(theta_i, S_i)                 (S_i known: within-trial covariance)
    theta_ij = beta[g_ij] + delta_ij,   delta_i ~ N(0, tau**2 K_i),   K_i = (1 - rho) I + rho 1 1'
    beta_g ~ Normal(m0, s0**2) or flat (independently),  tau ~ p(tau)

``g_ij`` assigns each estimate to one coefficient: a single coefficient ``mu`` for the
contrasts of multi-arm trials against a shared control (the standard consistency model:
``Cov(delta_ij, delta_ik) = tau**2 / 2``, i.e. ``rho = 1/2``; Higgins & Whitehead 1996,
Cochrane Handbook sec. 11.4.3), one coefficient per time window for estimates at several
time points (``rho`` is then the correlation of a trial's true effects across time). This
is metafor's ``rma.mv(yi, V, mods = ~ 0 + factor(g), random = ~ factor(j) | study,
struct = "CS", rho = rho)``.

Given ``tau`` the model is Gaussian with block-diagonal covariance ``V = S + tau**2 K``:
``beta | tau, y ~ N(b, P^-1)`` with ``P = X' V^-1 X + P0`` and ``b = P^-1 (X' V^-1 y + P0 m0)``,
and ``p(y | tau)`` is closed-form. ``tau`` is integrated exactly as in
:class:`~ketabayes.inference.exact.ExactNormalNormal` (the same standardisation, range
finding and checked Gauss-Legendre quadrature on ``log tau``; this class subclasses it and
replaces only the closed forms given ``tau``), so every posterior is a mixture of normals
over the quadrature nodes. With one estimate per trial the model *is* the normal-normal
model and the results agree with :class:`ExactNormalNormal` to rounding.

References
----------
Higgins JPT, Whitehead A (1996). Borrowing strength from external trials in a meta-analysis.
Stat Med 15:2733-2749.
Higgins JPT et al. (eds) (2023). Cochrane Handbook for Systematic Reviews of Interventions 6.4,
sec. 11.4.3 (multi-arm studies in network meta-analysis).
Viechtbauer W (2010). Conducting meta-analyses in R with the metafor package. J Stat Softw 36(3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import optimize

from ketabayes.errors import DataError, PriorError
from ketabayes.inference.exact import ExactNormalNormal, QuadratureSettings
from ketabayes.marginals import Marginal, MixtureMarginal
from ketabayes.model.priors import Flat, Normal, Prior
from ketabayes.model.priors_extra import resolve_prior

__all__ = ["ExactMultivariateNormal", "MultivariateFit", "rma_mv_cs"]

_LOG_2PI = math.log(2.0 * math.pi)


def _blocks(block, n):
    """Indices of each trial's estimates, grouped by block size: ``[(d, (nb, d) index array), ...]``."""
    block = np.asarray(block).ravel()
    if block.size != n:
        raise DataError(f"one block (trial) label per estimate needed: {block.size} labels for {n} estimates")
    _, inv = np.unique(block, return_inverse=True)
    order = [np.flatnonzero(inv == b) for b in range(inv.max() + 1)]
    out = {}
    for idx in order:
        out.setdefault(idx.size, []).append(idx)
    return [(d, np.array(v)) for d, v in sorted(out.items())]


def _check_cov(S, groups, labels):
    n = S.shape[0]
    if S.shape != (n, n) or not np.all(np.isfinite(S)):
        raise DataError("the within-trial covariance must be a finite square matrix, one row per estimate")
    inside = np.zeros((n, n), bool)
    for _, idx in groups:
        for row in idx:
            inside[np.ix_(row, row)] = True
            blk = S[np.ix_(row, row)]
            lab = labels[row[0]] if labels is not None else f"block at position {int(row[0])}"
            if not np.allclose(blk, blk.T, rtol=1e-12, atol=0.0):
                raise DataError("within-trial covariance matrix is not symmetric", study=lab)
            if np.any(np.diag(blk) <= 0) or np.linalg.eigvalsh(blk)[0] <= 0:
                raise DataError("within-trial covariance matrix is not positive definite (check the variances "
                                "and correlations)", study=lab)
    if np.any(S[~inside] != 0):
        raise DataError("the covariance matrix has non-zero entries between different trials; estimates of "
                        "different trials must be independent")


class ExactMultivariateNormal(ExactNormalNormal):
    """Exact posterior of the multivariate normal random-effects model (see the module docstring).

    Parameters
    ----------
    y : array_like, shape (n,)
        Estimates (contrasts, or estimates at several time points).
    S : array_like, shape (n, n)
        Known within-trial covariance, block-diagonal over trials.
    block : array_like, shape (n,)
        Trial of each estimate (any labels; estimates of a trial need not be adjacent).
    coef : array_like of int, shape (n,)
        Coefficient of each estimate (``0 .. p-1``); all zeros for one average effect.
    prior_beta : Normal or Flat
        Prior of every coefficient (independent).
    prior_tau : Prior
    rho : float
        Correlation of a trial's random effects (``0 <= rho < 1``; 0.5 for contrasts sharing a control).
    labels : sequence of str, optional
        Trial label of each estimate, for error messages.
    settings : QuadratureSettings, optional

    Examples
    --------
    >>> import numpy as np
    >>> from ketabayes.model.priors import Flat, HalfNormal
    >>> S = np.array([[0.5, 0.3, 0.0], [0.3, 0.5, 0.0], [0.0, 0.0, 0.4]])  # a 3-arm and a 2-arm trial
    >>> post = ExactMultivariateNormal([2.0, 3.0, 1.0], S, [0, 0, 1], [0, 0, 0], Flat(), HalfNormal(1.0), rho=0.5)
    >>> round(float(post.mu.mean), 3), round(float(post.mu.cdf(0.0)), 4)
    (1.803, 0.0142)
    """

    def __init__(self, y, S, block, coef, prior_beta: Prior, prior_tau: Prior, *, rho: float,
                 labels=None, settings: QuadratureSettings | None = None):
        y = np.asarray(y, dtype=float).ravel()
        n = y.size
        if n == 0:
            raise DataError("no estimates")
        S = np.asarray(S, dtype=float)
        if S.shape != (n, n):
            raise DataError(f"the covariance matrix must be {n} x {n} (one row per estimate), got {S.shape}")
        bad = np.flatnonzero(~np.isfinite(y))
        if bad.size:
            lab = labels[bad[0]] if labels is not None else f"position {int(bad[0])}"
            raise DataError("non-finite estimate", study=lab, column="yi")
        groups = _blocks(block, n)
        _check_cov(S, groups, labels)
        coef = np.asarray(coef).ravel().astype(int)
        if coef.size != n or coef.min() < 0:
            raise DataError("one coefficient index (0, 1, ...) per estimate needed")
        p = int(coef.max()) + 1
        missing = sorted(set(range(p)) - set(coef.tolist()))
        if missing:
            raise DataError(f"coefficient(s) {missing} have no estimates")
        if not 0.0 <= float(rho) < 1.0:
            raise DataError(f"rho (correlation of a trial's random effects) must be in [0, 1), got {rho!r}")
        if isinstance(prior_beta, Flat):
            self._mode = "flat"
        elif isinstance(prior_beta, Normal) and not prior_beta.truncated:
            self._mode = "normal"
        else:
            raise PriorError(f"the multivariate exact engine takes a normal or flat prior for the average "
                             f"effect(s), got {prior_beta}")
        v = np.diag(S).copy()
        prior_tau = resolve_prior(prior_tau, v)
        if prior_tau is None:
            raise PriorError("a random-effects model needs a prior for tau")
        self.y, self.v, self.S = y, v, S
        self.coef, self.p, self.rho = coef, p, float(rho)
        self.prior_mu = self.prior_beta = prior_beta
        self.prior_tau = prior_tau
        self.fixed = False
        self.settings = settings or QuadratureSettings()
        self._c = float(np.median(y))
        self._s = float(np.sqrt(np.median(v)))
        self._log_s = math.log(self._s)
        self._ys = (y - self._c) / self._s
        self._vs = v / self._s**2
        self._Ss = S / self._s**2
        if self._mode == "normal":
            self._m0 = (prior_beta.mu - self._c) / self._s
            self._s0 = prior_beta.sigma / self._s
        self._groups = [(d, idx, self._Ss[idx[:, :, None], idx[:, None, :]],
                         (1.0 - self.rho) * np.eye(d) + self.rho * np.ones((d, d)),
                         np.eye(p)[coef[idx]]) for d, idx in groups]
        self._log_jac = -n * self._log_s + (p * self._log_s if self._mode == "flat" else 0.0)
        self._integrate()
        self.tau_nodes = self._s * self._t_nodes
        self._bm, self._bc = self._beta_std(self._t_nodes)
        self._cm, self._cv = self._bm[:, 0], self._bc[:, 0, 0]
        self.cond_mean = self._c + self._s * self._bm
        self.cond_var = self._s**2 * self._bc

    # ------------------------------------------------------------------ closed forms given tau
    def _moments(self, t):
        """``X'WX (T,p,p)``, ``X'Wy (T,p)``, ``y'Wy (T,)`` and ``log det V (T,)`` for standardised tau values."""
        T, p = t.size, self.p
        xwx, xwy = np.zeros((T, p, p)), np.zeros((T, p))
        ywy, logdet = np.zeros(T), np.zeros(T)
        t2 = t[:, None, None, None] ** 2
        for d, idx, Sb, K, Xb in self._groups:
            V = Sb[None] + t2 * K
            yb = self._ys[idx]
            if d == 1:
                w = 1.0 / V[..., 0, 0]
                logdet += np.log(V[..., 0, 0]).sum(-1)
                xwx += np.einsum("tb,bp,bq->tpq", w, Xb[:, 0], Xb[:, 0])
                xwy += np.einsum("tb,bp,b->tp", w, Xb[:, 0], yb[:, 0])
                ywy += (w * yb[:, 0] ** 2).sum(-1)
                continue
            W = np.linalg.inv(V)
            logdet += np.linalg.slogdet(V)[1].sum(-1)
            xwx += np.einsum("bip,tbij,bjq->tpq", Xb, W, Xb)
            xwy += np.einsum("bip,tbij,bj->tp", Xb, W, yb)
            ywy += np.einsum("bi,tbij,bj->t", yb, W, yb)
        return xwx, xwy, ywy, logdet

    def _gls(self, t):
        """Posterior mean ``b``, precision ``P`` of beta and ``log p(y | tau)`` (standardised) at tau values."""
        xwx, xwy, ywy, logdet = self._moments(t)
        n, p = self._ys.size, self.p
        prec, num = xwx, xwy
        if self._mode == "normal":
            p0 = 1.0 / self._s0**2
            prec = xwx + p0 * np.eye(p)
            num = xwy + p0 * self._m0
        b = np.linalg.solve(prec, num[..., None])[..., 0]
        quad = ywy - 2.0 * (b * xwy).sum(-1) + np.einsum("tp,tpq,tq->t", b, xwx, b)
        ll = -0.5 * (logdet + n * _LOG_2PI + quad)
        ld_prec = np.linalg.slogdet(prec)[1]
        if self._mode == "normal":
            ll = ll - 0.5 * p0 * ((b - self._m0) ** 2).sum(-1) - 0.5 * (ld_prec - p * math.log(p0))
        else:
            ll = ll + 0.5 * p * _LOG_2PI - 0.5 * ld_prec
        return b, prec, ll

    def _gauss_std(self, t):
        t = np.asarray(t, dtype=float)
        shape = t.shape
        t = t.ravel()
        m, var, ll = np.empty(t.size), np.empty(t.size), np.empty(t.size)
        step = max(1, 400_000 // max(1, self._ys.size * self.p))
        with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
            for i in range(0, t.size, step):
                b, prec, out = self._gls(t[i:i + step])
                m[i:i + step] = b[:, 0]
                var[i:i + step] = np.linalg.inv(prec)[:, 0, 0]
                ll[i:i + step] = out
        return m.reshape(shape), var.reshape(shape), ll.reshape(shape)

    def _beta_std(self, t):
        """Mean ``(T, p)`` and covariance ``(T, p, p)`` of beta given standardised tau values."""
        b, prec, _ = self._gls(np.asarray(t, dtype=float).ravel())
        return b, np.linalg.inv(prec)

    def _conditional(self, tau):
        b, c = self._beta_std(np.asarray(tau, dtype=float) / self._s)
        return self._c + self._s * b, self._s**2 * c

    def _flat_conditional(self, t):  # pragma: no cover - only the grid mode of the parent uses it
        raise NotImplementedError

    # ------------------------------------------------------------------ marginals
    def beta(self, j: int = 0) -> Marginal:
        """Posterior of coefficient ``j`` (the average effect of time window ``j``)."""
        return MixtureMarginal(self.weights, self._bm[:, j], np.sqrt(self._bc[:, j, j]), loc=self._c, scale=self._s)

    def predictive(self, j: int = 0) -> Marginal:
        """Predictive distribution of the true effect of coefficient ``j`` in a new trial."""
        return MixtureMarginal(self.weights, self._bm[:, j],
                               np.maximum(np.sqrt(self._bc[:, j, j] + self._t_nodes**2), 1e-150),
                               loc=self._c, scale=self._s)

    @cached_property
    def mu(self) -> Marginal:
        return self.beta(0)

    @cached_property
    def theta_new(self) -> Marginal:
        return self.predictive(0)

    def _where(self, i):
        for d, idx, Sb, K, Xb in self._groups:
            hit = np.argwhere(idx == i)
            if hit.size:
                return d, idx[hit[0, 0]], Sb[hit[0, 0]], K, Xb[hit[0, 0]], int(hit[0, 1])
        raise IndexError(i)

    def theta(self, i: int) -> Marginal:
        """Posterior of estimate ``i``'s true (shrunken) effect ``theta_ij``."""
        d, row, Sb, K, Xb, r = self._where(i)
        t2 = self._t_nodes[:, None, None] ** 2
        TK = t2 * K[None]
        A = TK @ np.linalg.inv(Sb[None] + TK)  # (N, d, d)
        G = Xb[None] - A @ Xb[None]  # (N, d, p)
        mean = (A @ self._ys[row])[:, r] + np.einsum("tp,tp->t", G[:, r], self._bm)
        var = (TK - A @ TK)[:, r, r] + np.einsum("tp,tpq,tq->t", G[:, r], self._bc, G[:, r])
        return MixtureMarginal(self.weights, mean, np.maximum(np.sqrt(np.maximum(var, 0.0)), 1e-150),
                               loc=self._c, scale=self._s)

    # ------------------------------------------------------------------ draws
    def sample(self, n: int, rng: np.random.Generator, *, studies: bool = True) -> dict[str, np.ndarray]:
        """Joint draws of ``tau (n,)``, ``beta (n, p)``, ``theta (n, n_estimates)``, ``theta_new (n, p)``."""
        tau = self.sample_tau(n, rng)
        t = tau / self._s
        b, cov = self._beta_std(t)
        L = np.linalg.cholesky(cov)
        beta = b + (L @ rng.standard_normal((n, self.p, 1)))[..., 0]
        c, s = self._c, self._s
        Kp = (1.0 - self.rho) * np.eye(self.p) + self.rho * np.ones((self.p, self.p))
        new = beta + t[:, None] * (rng.standard_normal((n, self.p)) @ np.linalg.cholesky(Kp).T)
        out = {"tau": tau, "beta": c + s * beta, "theta_new": c + s * new}
        if studies:
            theta = np.empty((n, self._ys.size))
            t2 = t[:, None, None, None] ** 2
            for _d, idx, Sb, K, Xb in self._groups:
                TK = t2 * K  # (n, 1, d, d)
                A = TK @ np.linalg.inv(Sb[None] + TK)  # (n, nb, d, d)
                xb = np.einsum("bip,tp->tbi", Xb, beta)
                mean = xb + (A @ (self._ys[idx][None] - xb)[..., None])[..., 0]
                cv = TK - A @ TK
                cv = 0.5 * (cv + np.swapaxes(cv, -1, -2))
                ev, evec = np.linalg.eigh(cv)
                z = rng.standard_normal(mean.shape)
                draw = mean + (evec @ (np.sqrt(np.maximum(ev, 0.0)) * z)[..., None])[..., 0]
                theta[:, idx] = draw
            out["theta"] = c + s * theta
        return out


@dataclass(frozen=True)
class MultivariateFit:
    """Frequentist (ML or REML) fit of the multivariate model: what metafor's ``rma.mv`` reports."""

    method: str
    beta: np.ndarray
    se: np.ndarray
    tau2: float
    loglik: float

    def to_dict(self) -> dict:
        return {"method": self.method, "beta": [float(x) for x in self.beta], "se": [float(x) for x in self.se],
                "tau2": float(self.tau2), "loglik": float(self.loglik)}


def rma_mv_cs(y, S, block, coef, *, rho: float, method: str = "REML", tau2: float | None = None) -> MultivariateFit:
    """ML / REML fit of the multivariate model (metafor's ``rma.mv`` with ``struct="CS"`` and ``rho`` fixed).

    ``tau^2`` maximises the (restricted) profile log-likelihood (bounded Brent on ``log tau^2``,
    compared with the boundary ``tau^2 = 0``); ``beta`` is the GLS estimate given ``tau^2`` and
    ``se`` its usual standard error. ``tau2`` given: that value is used (``rma.mv(..., tau2=)``).

    Examples
    --------
    >>> import numpy as np
    >>> f = rma_mv_cs([0.2, 0.5, 0.1], np.diag([0.04, 0.09, 0.05]), [0, 1, 2], [0, 0, 0], rho=0.5, method="ML")
    >>> round(float(f.beta[0]), 4), f.tau2  # no multi-arm trial: the univariate ML fit (kb.rma, method="ML")
    (0.2238, 0.0)
    """
    if method not in ("ML", "REML"):
        raise ValueError("method must be 'ML' or 'REML'")
    eng = object.__new__(ExactMultivariateNormal)  # only the closed forms; no integration
    y = np.asarray(y, dtype=float).ravel()
    S = np.asarray(S, dtype=float)
    groups = _blocks(block, y.size)
    _check_cov(S, groups, None)
    coef = np.asarray(coef).ravel().astype(int)
    p = int(coef.max()) + 1
    eng.p, eng.rho, eng._ys = p, float(rho), y
    eng._groups = [(d, idx, S[idx[:, :, None], idx[:, None, :]],
                    (1.0 - rho) * np.eye(d) + rho * np.ones((d, d)), np.eye(p)[coef[idx]]) for d, idx in groups]

    def fit(t2):
        xwx, xwy, ywy, logdet = eng._moments(np.array([math.sqrt(t2)]))
        b = np.linalg.solve(xwx[0], xwy[0])
        quad = ywy[0] - b @ xwy[0]
        ll = -0.5 * (logdet[0] + y.size * _LOG_2PI + quad)
        if method == "REML":
            # metafor's restricted log-likelihood (Harville 1977), including its + log det(X'X) / 2
            xtx = np.zeros((p, p))
            np.add.at(xtx, (coef, coef), 1.0)
            ll += 0.5 * p * _LOG_2PI - 0.5 * np.linalg.slogdet(xwx[0])[1] + 0.5 * np.linalg.slogdet(xtx)[1]
        return ll, b, np.sqrt(np.diag(np.linalg.inv(xwx[0])))

    if tau2 is None:
        scale = float(np.var(y) + np.max(np.diag(S)))
        res = optimize.minimize_scalar(lambda x: -fit(math.exp(x))[0], bounds=(math.log(scale) - 30.0,
                                       math.log(scale) + 5.0), method="bounded", options={"xatol": 1e-12})
        tau2 = math.exp(res.x)
        if fit(0.0)[0] >= fit(tau2)[0]:
            tau2 = 0.0
    ll, b, se = fit(float(tau2))
    return MultivariateFit(method, b, se, float(tau2), float(ll))
