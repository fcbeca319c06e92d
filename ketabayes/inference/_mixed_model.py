"""The Gaussian part of the hierarchical engine: mixed-model equations given the variance components.

On the standardised scale of :mod:`ketabayes.inference.exact_hierarchical` (notation there): given
``phi = (tau, sigma_1, ..., sigma_G)``, the non-centred coefficients ``c = (b, z)`` have precision
``P = Q0 + S G S`` with ``G = W' D W``, ``D = diag(1 / (v + tau**2))`` and ``S`` the column scales (1 for
``b``, ``sigma_g`` for term ``g``'s columns), and right-hand side ``r = S W' D d``.

:meth:`MixedModel.evaluate` (the quadrature's evaluations) uses two facts about the designs the
engine sees:

* ``G``, ``W' D d`` and ``sum log(v + tau**2)`` depend on ``tau`` only: on a tensor grid they are
  computed once per distinct ``tau`` of a chunk, not per node;
* an indicator term (every trial in at most one of its levels, e.g. the drug x condition cells) has a
  diagonal block of ``P``. Its coefficients ``z_J`` are eliminated in closed form (block Cholesky /
  Schur complement): with the group totals ``g_j = sum_{i in j} d_i w_ij**2``,
  ``P_JJ = diag(1 + sigma**2 g_j)`` and the rest ``c_K`` has precision
  ``Sc = Q0_K + S_K (H + G_KJ diag(omega) G_JK) S_K``, where ``H`` is the weighted Gram matrix of
  ``W_K`` *within* the groups (``w_Ki`` minus its group's weighted regression on ``w_ij``) and
  ``omega_j = 1 / (g_j (1 + sigma**2 g_j))``. Both terms are positive semi-definite, so no
  cancellation occurs (the textbook ``P_KK - P_KJ P_JJ^-1 P_JK`` loses digits for large ``sigma``).
  Only ``Sc`` (mu, the slopes and the other terms' columns) is factorised; the targets' variances
  need only the entries of ``P^-1`` that their rows touch.

:meth:`MixedModel.dense` is the direct computation (one Cholesky of the Jacobi-scaled ``P`` per
node); it also returns the factor used for exact draws, and ``tests/test_mixed_model.py`` checks the
two against each other.

References
----------
Henderson CR (1975). Best linear unbiased estimation and prediction under a selection model.
Biometrics 31(2):423-447. doi:10.2307/2529430
"""

from __future__ import annotations

import math
from functools import cached_property

import numpy as np

__all__ = ["MixedModel"]

_LOG_2PI = math.log(2.0 * math.pi)


class MixedModel:
    """Log marginal likelihood and target moments of the standardised model at variance components ``phi``.

    Parameters
    ----------
    W : array, shape (k, p)
        ``[X, Z]``.
    comp_of_col : array of int, shape (p,)
        Variance component scaling each column (-1: fixed coefficient; ``g >= 1``: term ``g``).
    resid, vs : array, shape (k,)
        ``y - W c0`` and the sampling variances (standardised).
    c0, q0 : array, shape (p,)
        Prior means and (diagonal) precisions of ``c`` (0 for flat coefficients).
    logdet_q0 : float
        Sum of the logs of the positive entries of ``q0``.
    A : array, shape (T, p)
        Targets as rows over ``(b, u)``.
    pred : array of bool, shape (T, C)
        Targets' independent normal terms.
    """

    def __init__(self, W, comp_of_col, resid, vs, c0, q0, logdet_q0, A, pred):
        self.W = np.asarray(W, dtype=float)
        k, p = self.W.shape
        self.k, self.p = k, p
        self.comp_of_col = np.asarray(comp_of_col, dtype=int)
        self.resid, self.vs = np.asarray(resid, dtype=float), np.asarray(vs, dtype=float)
        self.c0, self.q0 = np.asarray(c0, dtype=float), np.asarray(q0, dtype=float)
        self.logdet_q0 = float(logdet_q0)
        self.A = np.asarray(A, dtype=float)
        self.pred = np.asarray(pred, dtype=float)
        self._setup_blocks()

    # ------------------------------------------------------------------ structure
    def _setup_blocks(self):
        """Choose the eliminated indicator term ``J`` (the one with most columns) and index the entries of
        ``P^-1`` the targets need."""
        W, cc = self.W, self.comp_of_col
        best = np.zeros(0, dtype=int)
        for g in np.unique(cc[cc >= 1]):
            cols = np.flatnonzero(cc == g)
            if np.max((W[:, cols] != 0).sum(1), initial=0) <= 1 and cols.size > best.size:
                best = cols
        J = best
        K = np.setdiff1d(np.arange(self.p), J)
        self.K, self.J = K, J
        nK, nJ = K.size, J.size
        WK, WJ = W[:, K], W[:, J]
        # the trial's column in J (-1 if none) and its entry
        self._grp = np.full(self.k, -1)
        self._wgrp = np.zeros(self.k)
        rows = np.flatnonzero((WJ != 0).any(1)) if nJ else np.zeros(0, dtype=int)
        if rows.size:
            self._grp[rows] = np.argmax(WJ[rows] != 0, axis=1)
            self._wgrp[rows] = WJ[rows, self._grp[rows]]
        self._onehot = WJ.copy()  # one entry per row at most
        self._WK = WK
        self._q0K, self._q0J = self.q0[K], self.q0[J]
        # targets share rows of A (a trial's effect and its cell, a prediction and its mean): the moments are
        # computed per distinct row, and the independent terms per distinct row of pred
        self._A_u, self._row_of_t = np.unique(self.A, axis=0, return_inverse=True)
        self._pred_u, self._prow_of_t = np.unique(self.pred, axis=0, return_inverse=True)
        # entries of P^-1 (in the order (K, J) -> original indices) touched by some target: pairs i <= j
        Aa = self._A_u != 0
        pairs = set()
        for t in range(self._A_u.shape[0]):
            s = np.flatnonzero(Aa[t])
            for a_ in range(s.size):
                for b_ in range(a_, s.size):
                    pairs.add((int(s[a_]), int(s[b_])))
        pairs = sorted(pairs)
        pos = np.full(self.p, -1)
        pos[K] = np.arange(nK)
        isJ = np.zeros(self.p, dtype=bool)
        isJ[J] = True
        posJ = np.full(self.p, -1)
        posJ[J] = np.arange(nJ)
        kinds = {"KK": [], "KJ": [], "JJd": [], "JJo": []}
        cols = {"KK": [], "KJ": [], "JJd": [], "JJo": []}
        for n_, (i, j) in enumerate(pairs):
            if not isJ[i] and not isJ[j]:
                kinds["KK"].append(pos[i] * nK + pos[j])
                cols["KK"].append(n_)
            elif isJ[i] != isJ[j]:
                kk, jj = (i, j) if not isJ[i] else (j, i)
                kinds["KJ"].append(pos[kk] * nJ + posJ[jj])
                cols["KJ"].append(n_)
            elif i == j:
                kinds["JJd"].append(posJ[i])
                cols["JJd"].append(n_)
            else:
                kinds["JJo"].append((posJ[i], posJ[j]))
                cols["JJo"].append(n_)
        self._pairs = np.array(pairs, dtype=int).reshape(-1, 2)
        self._pair_kinds = {key: np.asarray(val, dtype=int) for key, val in kinds.items()}
        self._pair_cols = {key: np.asarray(val, dtype=int) for key, val in cols.items()}
        amap = np.zeros((len(pairs), self._A_u.shape[0]))
        for n_, (i, j) in enumerate(pairs):
            amap[n_] = self._A_u[:, i] * self._A_u[:, j] * (1.0 if i == j else 2.0)
        # the products with the (sparse) rows: scipy's single-threaded sparse kernels (few non-zeros per row;
        # a multithreaded BLAS gemm of these shapes is several times slower on a loaded machine)
        from scipy import sparse

        self._A_u_csr = sparse.csr_array(self._A_u)
        self._var_map_csr = sparse.csr_array(amap.T)  # (distinct rows of A, pairs)
        self._jc = int(self.comp_of_col[J[0]]) if J.size else -1

    def scales(self, phi):
        """Column scales ``(N, p)``: 1 for fixed coefficients, ``sigma_g`` for term g's columns."""
        sv = np.ones((phi.shape[0], self.p))
        rand = self.comp_of_col >= 0
        sv[:, rand] = phi[:, self.comp_of_col[rand]]
        return sv

    def _per_tau(self, tau):
        """The ``tau``-only parts for distinct values ``tau (m,)``."""
        d = 1.0 / (self.vs[None, :] + tau[:, None] ** 2)              # (m, k)
        dr = d * self.resid[None, :]
        g_tot = d @ (self._onehot**2)                                   # (m, J): g_j
        GKJ = np.swapaxes(d[:, :, None] * self._WK[None], 1, 2) @ self._onehot  # (m, K, J)
        gJr = dr @ self._onehot                                         # (m, J)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv_g = np.where(g_tot > 0, 1.0 / g_tot, 0.0)
        # within-group residuals of W_K and of the data (the group's weighted regression on w_ij removed)
        beta = GKJ * inv_g[:, None, :]                                  # (m, K, J)
        gam = gJr * inv_g                                               # (m, J)
        grp = self._grp
        has = grp >= 0
        RK = np.broadcast_to(self._WK, (tau.size, *self._WK.shape)).copy()
        Rr = np.broadcast_to(self.resid, (tau.size, self.k)).copy()
        if has.any():
            RK[:, has, :] -= np.swapaxes(beta[:, :, grp[has]], 1, 2) * self._wgrp[has][None, :, None]
            Rr[:, has] -= gam[:, grp[has]] * self._wgrp[has][None, :]
        dRK = np.swapaxes(d[:, :, None] * RK, 1, 2)                     # (m, K, k)
        H = dRK @ RK                                                    # within-group Gram of W_K
        hK = (dRK @ Rr[:, :, None])[:, :, 0]                            # within-group W_K' D resid
        ss = (d * Rr**2).sum(1)                                         # within-group resid' D resid
        return {"logtv": -np.log(d).sum(1), "GKJ": GKJ, "g": g_tot, "gJr": gJr, "H": H, "hK": hK, "ss": ss}

    # ------------------------------------------------------------------ evaluations
    def evaluate(self, phi, targets=False):
        """Log likelihood ``{"loglik"}`` at ``phi (N, C)``; with ``targets``: ``"coef"`` the coefficients'
        conditional means on the ``(b, u)`` scale (``(N, p)``; the targets' means are ``coef @ A'``), ``"mean"``
        the targets' means ``"tmean"``, ``True`` also their variances ``"tvar"`` (``(N, T)``); ``"compact"``:
        the means ``"qmean"`` and variances ``"qvar"`` of the distinct rows of ``A`` (``(rows, N)``, see
        :attr:`row_of_target`; without the targets' independent terms ``pred @ phi**2``)."""
        phi = np.asarray(phi, dtype=float)
        n = phi.shape[0]
        K, J = self.K, self.J
        tau_u, inv_t = np.unique(phi[:, 0], return_inverse=True)
        pt = self._per_tau(tau_u)
        sv = self.scales(phi)
        sK = sv[:, K]
        # everything but the scales of the factorised block depends on (tau, sigma_J) only: once per pair
        if J.size:
            s_u, inv_s = np.unique(phi[:, self._jc], return_inverse=True)
            key, inv = np.unique(inv_t * s_u.size + inv_s, return_inverse=True)
            t_p, s_p = key // s_u.size, s_u[key % s_u.size]
            g = pt["g"][t_p]
            pJ_p = self._q0J + s_p[:, None] ** 2 * g                      # diagonal of P_JJ (>= 1: z ~ N(0, 1))
            with np.errstate(divide="ignore", invalid="ignore"):
                omega = np.where(g > 0, self._q0J / (g * pJ_p), 0.0)      # = 1/g - sigma^2 / (q0 + sigma^2 g)
            GKJw = pt["GKJ"][t_p] * omega[:, None, :]
            gJr = pt["gJr"][t_p]
            inner = pt["H"][t_p] + GKJw @ np.swapaxes(pt["GKJ"][t_p], 1, 2)
            v = pt["hK"][t_p] + (GKJw @ gJr[:, :, None])[:, :, 0]
            # resid' D resid - rJ' P_JJ^-1 rJ (within-group sum of squares + sum omega gJr^2) and log|P_JJ|
            const = pt["ss"][t_p] + (omega * gJr**2).sum(1) + pt["logtv"][t_p] + np.log(pJ_p).sum(1)
        else:
            t_p, inv = np.arange(tau_u.size), inv_t
            inner, v, const = pt["H"], pt["hK"], pt["ss"] + pt["logtv"]
        Sc = inner[inv] * sK[:, :, None] * sK[:, None, :]
        Sc[:, np.arange(K.size), np.arange(K.size)] += self._q0K
        rK2 = sK * v[inv]
        # Jacobi scaling Sc = D Scn D: group scales far apart make Sc badly scaled, not singular
        dg = np.sqrt(np.diagonal(Sc, axis1=1, axis2=2))
        Scn = Sc / (dg[:, :, None] * dg[:, None, :])
        Ln = np.linalg.cholesky(Scn)
        logdet = 2.0 * (np.log(np.diagonal(Ln, axis1=1, axis2=2)).sum(1) + np.log(dg).sum(1))
        full = targets is True or targets == "compact"
        if full:
            Sinv = np.linalg.inv(Scn) / (dg[:, :, None] * dg[:, None, :])
            solK = (Sinv @ rK2[:, :, None])[:, :, 0]
        else:
            solK = np.linalg.solve(Scn, (rK2 / dg)[:, :, None])[:, :, 0] / dg
        # r' P^-1 r = rJ' P_JJ^-1 rJ + rK2' Sc^-1 rK2 (the first part is in const)
        ll = -0.5 * (self.k * _LOG_2PI + const[inv] + logdet - self.logdet_q0 - (rK2 * solK).sum(1))
        out = {"loglik": ll}
        if not targets:
            return out
        coef = np.empty((n, self.p))
        coef[:, K] = (self.c0[K] + solK) * sK
        if J.size:
            sJ = phi[:, self._jc][:, None]
            pJ = pJ_p[inv]
            GKJ = pt["GKJ"][inv_t]                                          # (n, K, J)
            # z_J = (rJ - P_JK solK) / pJ, with P_KJ = S_K G_KJ sigma_J and rJ = sigma_J gJr
            zJ = sJ * (pt["gJr"][inv_t] - ((sK * solK)[:, None, :] @ GKJ)[:, 0, :]) / pJ
            coef[:, J] = (self.c0[J] + zJ) * sJ
        out["coef"] = coef
        if targets == "coef":
            return out
        qmean = self._A_u_csr @ coef.T                                    # (distinct rows, n)
        if targets == "mean":
            out["tmean"] = qmean.T[:, self._row_of_t]
            return out
        # the entries of S P^-1 S the targets touch: (K, K) from Sc^-1, (K, J) = -Sc^-1 B, (j, j) and (j, j')
        E = np.empty((n, self._pairs.shape[0]))
        kinds, cols = self._pair_kinds, self._pair_cols
        E[:, cols["KK"]] = Sinv.reshape(n, -1)[:, kinds["KK"]]
        if J.size:
            B = sK[:, :, None] * GKJ * (sJ / pJ)[:, None, :]              # P_KJ P_JJ^-1
            PiKJ = -(Sinv @ B)
            E[:, cols["KJ"]] = PiKJ.reshape(n, -1)[:, kinds["KJ"]]
            if kinds["JJd"].size:
                jd = kinds["JJd"]
                E[:, cols["JJd"]] = 1.0 / pJ[:, jd] - (B[:, :, jd] * PiKJ[:, :, jd]).sum(1)
            if kinds["JJo"].size:
                j1, j2 = kinds["JJo"][:, 0], kinds["JJo"][:, 1]
                E[:, cols["JJo"]] = -(B[:, :, j1] * PiKJ[:, :, j2]).sum(1)
        E *= sv[:, self._pairs[:, 0]] * sv[:, self._pairs[:, 1]]
        qvar = self._var_map_csr @ E.T                                     # (distinct rows, n)
        if targets == "compact":
            out["qmean"], out["qvar"] = qmean, qvar
            return out
        out["tmean"] = qmean.T[:, self._row_of_t]
        out["tvar"] = qvar.T[:, self._row_of_t] + ((phi**2) @ self._pred_u.T)[:, self._prow_of_t]
        return out

    @property
    def n_rows(self) -> int:
        """Number of distinct rows of ``A``."""
        return self._A_u.shape[0]

    @property
    def row_of_target(self) -> np.ndarray:
        """Per target, its distinct row of ``A`` (the columns of ``"qmean"`` / ``"qvar"``)."""
        return self._row_of_t

    @cached_property
    def _outer(self):
        return (self.W[:, :, None] * self.W[:, None, :]).reshape(self.k, -1)

    @cached_property
    def _A_outer(self):
        """a' P^-1 a for every target from the entries of P^-1 that its (sparse) row a touches."""
        from scipy import sparse  # only for the dense pass (exact draws): not on the integration path

        return sparse.csr_array((self.A[:, :, None] * self.A[:, None, :]).reshape(self.A.shape[0], -1))

    def dense(self, phi, targets=False, factor=False):
        """The direct computation (one Cholesky of ``P`` per node); with ``factor`` also ``"mean_z"``,
        ``"sv"`` and ``"chol"`` (``P = chol chol'``) for exact draws."""
        phi = np.asarray(phi, dtype=float)
        n = phi.shape[0]
        tau2 = phi[:, 0] ** 2
        tv = self.vs[None, :] + tau2[:, None]
        d = 1.0 / tv
        sv = self.scales(phi)
        P = (d @ self._outer).reshape(n, self.p, self.p) * sv[:, :, None] * sv[:, None, :]
        P[:, np.arange(self.p), np.arange(self.p)] += self.q0
        r = ((d * self.resid) @ self.W) * sv
        # Jacobi scaling P = D Pn D (D = sqrt(diag P)): group scales far apart make P badly scaled, not singular
        dg = np.sqrt(np.diagonal(P, axis1=1, axis2=2))
        Pn = P / (dg[:, :, None] * dg[:, None, :])
        Ln = np.linalg.cholesky(Pn)
        logdet = 2.0 * (np.log(np.diagonal(Ln, axis1=1, axis2=2)).sum(1) + np.log(dg).sum(1))
        full = targets and targets != "mean"  # "mean": target means only (no variances: no inverse)
        if full:
            Pinv = np.linalg.inv(Pn) / (dg[:, :, None] * dg[:, None, :])
            sol = (Pinv @ r[:, :, None])[:, :, 0]
        else:
            sol = np.linalg.solve(Pn, (r / dg)[:, :, None])[:, :, 0] / dg
        quad = (d * self.resid**2).sum(1) - (r * sol).sum(1)
        ll = -0.5 * (self.k * _LOG_2PI + np.log(tv).sum(1) + logdet - self.logdet_q0 + quad)
        out = {"loglik": ll}
        if targets or factor:
            mean = self.c0 + sol
            out["mean_z"] = mean
            out["sv"] = sv
        if targets:
            out["tmean"] = (mean * sv) @ self.A.T
        if full:
            M = (Pinv * sv[:, :, None] * sv[:, None, :]).reshape(n, -1)
            out["tvar"] = (self._A_outer @ M.T).T + (phi**2) @ self.pred.T
        if factor:
            out["chol"] = dg[:, :, None] * Ln  # P = (D Ln)(D Ln)'
        return out
