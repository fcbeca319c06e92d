"""The one result contract: what every ketabayes result offers, whichever model made it.

Every fitted model (random effects, hierarchical, binomial, ...) returns a subclass of
:class:`ResultBase`. A subclass supplies only its targets (:class:`TargetInfo`), the
posterior :class:`~ketabayes.marginals.Marginal` of each, and its scale parameters
(``tau``, group SDs); the tables, the reporting scale, the decision probabilities, the
machine-readable output, the HTML form and the netCDF output are written once, here.

Table vocabulary (the same in every table): ``target`` (always a column), ``kind``,
``mean``, ``sd`` (``sd_log`` on the ratio scale), ``median``, ``ci_low``, ``ci_high`` (the
equal-tailed interval), ``hpd_low``, ``hpd_high`` (the shortest, highest-density interval, of the
ratio itself on the ratio scale), ``ci_prob`` (the probability of both intervals), ``scale`` and,
in decision tables, ``p_benefit``, ``p_trivial``, ``p_harm``, ``p_any_benefit`` with the
thresholds that define them as columns: ``benefit_direction``, ``mcid``, ``benefit_cut`` and
``harm_cut`` (cut points on the table's scale).
"""

from __future__ import annotations

import hashlib
import html
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ketabayes import dims
from ketabayes.decision import RATIO_MEASURES, Thresholds, benefit_curve, decision_probabilities
from ketabayes.errors import KetabayesError
from ketabayes.marginals import Marginal, MixtureMarginal
from ketabayes.provenance import to_json

if TYPE_CHECKING:  # xarray is imported when a tree is built: an exact fit and its tables need none
    import xarray as xr

__all__ = ["ResultBase", "SETTINGS_ATTR", "TargetInfo", "SCALES", "content_hash"]

#: root attribute of the DataTree that holds the settings as JSON
SETTINGS_ATTR = "ketabayes"

#: reporting scales: the analysis scale of additive measures, the log scale of ratio measures, the ratio itself
SCALES = ("identity", "log", "ratio")


@dataclass(frozen=True)
class TargetInfo:
    """A reported quantity of a result.

    ``kind`` is one of ``"mean"`` (the average effect), ``"predictive"`` (a new trial),
    ``"study"`` (a trial's shrunken effect), ``"group"`` (e.g. ``drug=ketamine``),
    ``"cell"`` (``drug=ketamine|condition=CRPS``) or ``"moderator"`` (a slope).
    ``levels`` maps grouping columns to levels; ``observed`` is False for a cell without
    trials; ``n_trials`` counts the trials that inform it directly.
    """

    name: str
    kind: str
    levels: dict = field(default_factory=dict)
    observed: bool = True
    n_trials: int = 0


def content_hash(tree: xr.DataTree) -> str:
    """SHA-256 of the data stored in a result tree (``observed_data`` and ``constant_data``).

    Stored with the settings when a result is saved and checked when it is loaded, so an
    edited file is refused instead of silently giving other numbers under the old hash.
    """
    h = hashlib.sha256()
    for group in ("observed_data", "constant_data"):
        if group not in tree.children:
            continue
        ds = tree[group].to_dataset()
        for name in sorted(ds.variables):
            arr = np.asarray(ds[name].values)
            h.update(f"{group}/{name}/{arr.dtype.kind}/{arr.shape}".encode())
            if arr.dtype.kind in "fiub":
                h.update(np.ascontiguousarray(arr.astype("<f8")).tobytes())
            else:
                h.update("\x1f".join(map(str, arr.ravel())).encode("utf-8"))
    return "sha256:" + h.hexdigest()


def _ratio_mean(m: Marginal) -> float:
    """E[exp(X)] of a marginal on the log scale (exact for mixtures, from draws otherwise)."""
    if isinstance(m, MixtureMarginal):
        return float(np.sum(m.weights * np.exp(m.means + 0.5 * m.sds**2)))
    draws = getattr(m, "draws", None)
    if draws is not None:
        w = getattr(m, "weights", None)
        x = np.exp(np.asarray(draws, dtype=float).ravel())
        return float(np.average(x, weights=w) if w is not None else x.mean())
    return float("nan")


class ResultBase:
    """The result contract shared by every model's result.

    Attributes
    ----------
    tree : xarray.DataTree
        ``posterior`` (draws; exact draws for the exact engine), ``observed_data``,
        ``constant_data``, ``log_likelihood`` and ``prior`` where available, and for NUTS
        ``sample_stats``. Root attribute ``ketabayes`` holds the settings as JSON. An exact
        fit builds it on first access (its tables and decision probabilities come from the
        exact marginals and need no draws), so a script that only reports never imports
        xarray; the draws are the same whenever it is built (seeded).
    settings : dict
        Model type, priors, thresholds, engine settings, seed, versions, data hash.
    exact : object or None
        The exact engine (``None`` for NUTS).
    diagnostics : Diagnostics or None
        NUTS convergence diagnostics (``None`` for the exact engine, whose draws are independent).
    """

    #: targets of :meth:`decision_table` when none are given (``None``: every target but slopes and studies)
    default_targets: tuple | None = None

    def __init__(self, tree: xr.DataTree | Callable[[], xr.DataTree], settings: dict, *, exact=None,
                 diagnostics=None, studies=None):
        # ``tree`` may be a function that builds it (called once, on first access of ``.tree``);
        # ``studies`` then gives the study labels, which would otherwise be read from the tree
        self._tree, self._build_tree = (None, tree) if callable(tree) else (tree, None)
        self._studies = None if studies is None else [str(s) for s in studies]
        self.settings = settings
        self.exact = exact
        self.diagnostics = diagnostics

    @property
    def tree(self) -> xr.DataTree:
        if self._tree is None:
            self._tree = self._build_tree()
            self._build_tree = None
            self._store_settings()
        return self._tree

    @tree.setter
    def tree(self, value: xr.DataTree) -> None:
        self._tree, self._build_tree = value, None

    # ------------------------------------------------------------------ what a subclass supplies
    @property
    def targets(self) -> list[TargetInfo]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _marginal(self, name: str) -> Marginal | None:  # pragma: no cover - abstract
        """Marginal of a target or scale parameter by exact name, or ``None`` if unknown."""
        raise NotImplementedError

    @property
    def scale_names(self) -> list[str]:
        """Names of the scale parameters (``tau``, group SDs); empty for a fixed-effect model."""
        return []

    def _scale_stats(self, name: str, qs) -> list[float]:  # pragma: no cover - abstract
        """``[mean, sd, *quantiles(qs)]`` of a scale parameter."""
        raise NotImplementedError

    def _diagnostic_var(self, name: str):
        """``(variable, selection)`` of a target in the posterior, for R-hat / ESS (NUTS)."""
        return None

    # ------------------------------------------------------------------ basics
    def _store_settings(self) -> None:
        if self._tree is not None:  # a tree not built yet gets them when it is built
            self._tree.attrs[SETTINGS_ATTR] = to_json(self._stored_settings())

    def _stored_settings(self) -> dict:
        s = dict(self.settings)
        if self.diagnostics is not None:
            s["diagnostics"] = self.diagnostics.to_dict()
        return s

    @property
    def model_type(self) -> str:
        return self.settings.get("model", "random effects")

    @property
    def engine(self) -> str:
        return self.settings["engine"]

    @property
    def measure(self) -> str:
        return self.settings.get("measure") or "GEN"

    @property
    def ratio(self) -> bool:
        """Whether the analysis is on the log scale of a ratio (OR, RR, HR, or thresholds given as ratios)."""
        th = self.thresholds
        return self.measure in RATIO_MEASURES or bool(th is not None and th.ratio)

    @property
    def posterior(self) -> xr.Dataset:
        return self.tree["posterior"].to_dataset()

    @property
    def thresholds(self) -> Thresholds | None:
        t = self.settings.get("thresholds")
        return Thresholds.from_dict(t) if t else None

    @property
    def target_names(self) -> list[str]:
        return [t.name for t in self.targets]

    @property
    def studies(self) -> list[str]:
        """Study labels, in the order of the data."""
        if self._studies is not None:
            return list(self._studies)
        return [str(s) for s in self.tree["observed_data"][dims.STUDY].values]

    def _thresholds(self, mcid, benefit, harm, required=True) -> Thresholds | None:
        return Thresholds.resolve(self.thresholds, mcid, benefit, harm, self.measure, required=required)

    def target_info(self, name: str) -> TargetInfo:
        for t in self.targets:
            if t.name == name:
                return t
        if name in self.scale_names:
            return TargetInfo(name, "scale")
        self.marginal(name)  # raises the helpful error
        return TargetInfo(name, "study")  # pragma: no cover

    def marginal(self, target: str = "mean") -> Marginal:
        """Posterior of one target as a :class:`~ketabayes.marginals.Marginal`.

        Parameters
        ----------
        target : str
            ``"mean"``, ``"predictive"``, a study label (or ``"study=<label>"``), a group
            level (``"drug=ketamine"``), a cell (``"drug=ketamine|condition=CRPS"``), or a
            scale parameter (``"tau"``).
        """
        name = str(target)
        m = self._marginal(name)
        if m is None and name.startswith("study="):
            m = self._marginal(name[len("study="):])
        if m is not None:
            return m
        from ketabayes.data.validation import closest

        names = self.target_names + self.scale_names
        best = closest(name, names)
        raise KetabayesError(f"unknown target {target!r}" + (f"; did you mean {best!r}?" if best else "")
                             + f" Targets: {', '.join(names[:8])}" + (", ..." if len(names) > 8 else ""))

    # ------------------------------------------------------------------ scale
    def _resolve_scale(self, scale: str | None) -> str:
        if scale is None:
            return "log" if self.ratio else "identity"
        if scale not in SCALES:
            raise KetabayesError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
        if scale in ("log", "ratio") and not self.ratio:
            raise KetabayesError(f"scale={scale!r} needs a ratio measure (OR, RR, HR); this analysis is "
                                 f"{self.measure} on an additive scale: use scale='identity'")
        if scale == "identity" and self.ratio:
            return "log"
        return scale

    def _stats(self, m: Marginal, prob: float, scale: str) -> dict:
        a = (1.0 - prob) / 2.0
        q = np.asarray(m.ppf(np.array([a, 0.5, 1.0 - a])), dtype=float)
        if scale == "ratio":
            # the shortest interval of the ratio itself: HPD intervals do not commute with exp
            h_lo, h_hi = m.hpd(prob, transform="exp")
            return {"mean": _ratio_mean(m), "sd_log": m.sd, "median": math.exp(q[1]), "ci_low": math.exp(q[0]),
                    "ci_high": math.exp(q[2]), "hpd_low": h_lo, "hpd_high": h_hi}
        h_lo, h_hi = m.hpd(prob)
        return {"mean": m.mean, "sd": m.sd, "median": q[1], "ci_low": q[0], "ci_high": q[2], "hpd_low": h_lo,
                "hpd_high": h_hi}

    def _scale_hpd(self, name: str, prob: float) -> tuple[float, float]:
        """Shortest interval of a scale parameter (its exact marginal when the exact engine ran)."""
        return self.marginal(name).hpd(prob)

    def _threshold_columns(self, th: Thresholds, scale: str) -> dict:
        lo, hi = th.cuts()
        b_cut, h_cut = (lo, hi) if th.benefit == "lower" else (hi, lo)
        if scale == "ratio":
            b_cut, h_cut = math.exp(b_cut), math.exp(h_cut)
        return {"benefit_direction": th.benefit, "mcid": float(th.mcid), "benefit_cut": b_cut, "harm_cut": h_cut}

    # ------------------------------------------------------------------ tables
    def _level_columns(self) -> list[str]:
        return []

    def _default_targets(self) -> list[str]:
        if self.default_targets is not None:
            return list(self.default_targets)
        return [t.name for t in self.targets if t.kind not in ("moderator", "study")]

    def _table(self, targets, prob: float, th: Thresholds | None, scale: str) -> pd.DataFrame:
        if not 0.0 < prob < 1.0:
            raise KetabayesError(f"prob must be between 0 and 1, got {prob!r}")
        level_cols = self._level_columns()
        rows = []
        for name in targets:
            m = self.marginal(name)
            info = self.target_info(name if self._marginal(name) is not None else name[len("study="):])
            row = {"target": name, "kind": info.kind}
            for c in level_cols:
                row[c] = info.levels.get(c)
            if level_cols:
                row.update(observed=bool(info.observed), n_trials=int(info.n_trials))
            row.update(self._stats(m, prob, scale))
            if th is not None:
                row.update(decision_probabilities(m, th))
            row.update(exact=bool(m.exact), ci_prob=float(prob), scale=scale)
            if th is not None:
                row.update(self._threshold_columns(th, scale))
            rows.append(row)
        return pd.DataFrame(rows)

    def decision_table(self, mcid: float | None = None, benefit: str | None = None, harm: float | None = None,
                       targets=None, prob: float = 0.95, scale: str | None = None) -> pd.DataFrame:
        """Probabilities of benefit beyond the MCID, practically no effect, harm and any benefit.

        Parameters
        ----------
        mcid : float, optional
            Minimal clinically important difference (a ratio for OR/RR); default: the one given at fit time.
        benefit : {"lower", "higher"}, optional
            Direction of benefit.
        harm : float, optional
            Harm threshold, if different from the MCID.
        targets : sequence of str, optional
            Target names (see :meth:`marginal`); default: the average effect, the predictive
            effect and, for hierarchical models, every group and cell.
        prob : float
            Probability of the credible intervals, equal-tailed (``ci_low, ci_high``) and shortest
            (``hpd_low, hpd_high``); default 0.95, stored in the column ``ci_prob``.
        scale : {"identity", "log", "ratio"}, optional
            Reporting scale: default the analysis scale (``"log"`` for OR/RR). ``"ratio"``
            exponentiates locations and equal-tailed bounds (``sd`` becomes ``sd_log``); the
            shortest interval is then that of the ratio itself, not the exponentiated log-scale one.

        Returns
        -------
        pandas.DataFrame
            One row per target: ``target, kind, mean, sd, median, ci_low, ci_high, hpd_low, hpd_high,
            p_benefit, p_trivial, p_harm, p_any_benefit, exact, ci_prob, scale, benefit_direction, mcid,
            benefit_cut, harm_cut`` (hierarchical results add the grouping columns,
            ``observed`` and ``n_trials`` after ``kind``). The probabilities do not depend on the scale.
        """
        th = self._thresholds(mcid, benefit, harm)
        scale = self._resolve_scale(scale)
        df = self._table(self._default_targets() if targets is None else list(targets), prob, th, scale)
        df.attrs.update(thresholds=th.to_dict(), thresholds_text=th.describe(self.measure), measure=self.measure,
                        engine=self.engine, model=self.model_type,
                        priors={k: v for k, v in self.settings.items() if k.startswith("prior_")})
        return df

    def summary(self, prob: float = 0.95, scale: str | None = None, targets=None) -> pd.DataFrame:
        """Mean, sd, median, equal-tailed and shortest (HPD) interval of every target and scale parameter.

        Exact for the exact engine; from draws for NUTS, with ``r_hat``, ``ess_bulk`` and
        ``ess_tail`` columns (rank-normalised, Vehtari et al. 2021). Scale parameters (``tau``,
        group SDs) are never exponentiated.

        Parameters
        ----------
        prob : float
            Probability of both intervals (column ``ci_prob``).
        scale : {"identity", "log", "ratio"}, optional
            Reporting scale (see :meth:`decision_table`).
        targets : sequence of str, optional
            Rows besides the scale parameters; default every target (for a meta-analysis of
            thousands of trials, name the ones you need).

        Returns
        -------
        pandas.DataFrame
            One row per target (column ``target``), scale parameters first (``kind == "scale"``).
        """
        scale = self._resolve_scale(scale)
        if targets is not None:
            names = list(targets)
        else:
            names = [t.name for t in self.targets if t.kind != "moderator"] + \
                    [t.name for t in self.targets if t.kind == "moderator"]
        body = self._table(names, prob, None, scale) if names else pd.DataFrame(
            columns=["target", "kind", "mean", "sd_log" if scale == "ratio" else "sd", "median", "ci_low", "ci_high",
                     "hpd_low", "hpd_high", "exact", "ci_prob", "scale"])
        a = (1.0 - prob) / 2.0
        rows = []
        for s in self.scale_names:
            mean, sd, lo, med, hi = self._scale_stats(s, (a, 0.5, 1.0 - a))
            h_lo, h_hi = self._scale_hpd(s, prob)
            rows.append({"target": s, "kind": "scale", "mean": mean, ("sd_log" if scale == "ratio" else "sd"): sd,
                         "median": med, "ci_low": lo, "ci_high": hi, "hpd_low": h_lo, "hpd_high": h_hi,
                         "exact": self.exact is not None, "ci_prob": float(prob),
                         "scale": "log" if scale == "ratio" else scale})
        if rows and len(body):
            out = pd.concat([pd.DataFrame(rows), body], ignore_index=True)
        else:
            out = pd.DataFrame(rows) if rows else body
        if self.diagnostics is not None:
            out = self._add_diagnostics(out)
        return out

    def _add_diagnostics(self, out: pd.DataFrame) -> pd.DataFrame:
        from arviz_stats import ess, rhat

        post = self.posterior
        cols = {"r_hat": [], "ess_bulk": [], "ess_tail": []}
        for name in out["target"]:
            where = self._diagnostic_var(name) if name not in self.scale_names else (name, {})
            if where is None or where[0] not in post:
                for c in cols:
                    cols[c].append(float("nan"))
                continue
            var, sel = where
            da = post[var].sel(sel) if sel else post[var]
            ok = set(da.dims) == {"chain", "draw"}
            cols["r_hat"].append(float(rhat(da, method="rank")) if ok else float("nan"))
            cols["ess_bulk"].append(float(ess(da, method="bulk")) if ok else float("nan"))
            cols["ess_tail"].append(float(ess(da, method="tail")) if ok else float("nan"))
        for c, v in cols.items():
            out[c] = v
        return out

    def benefit_curve(self, thresholds=None, target: str = "mean", scale: str | None = None) -> pd.DataFrame:
        """P(benefit at least as large as each threshold) for one target.

        Parameters
        ----------
        thresholds : array_like, optional
            Benefit sizes: points of the outcome scale, or ratios for OR/RR (a ratio r means a
            benefit beyond r or 1/r, whichever is the benefit side). Default: 51 sizes from 0 (or 1).
        target : str
        scale : {"identity", "log", "ratio"}, optional
            Scale of ``thresholds`` and of the ``threshold`` column for ratio measures
            (default ``"ratio"``: thresholds as ratios).

        Returns
        -------
        pandas.DataFrame
            Columns ``target, threshold, p_benefit, scale, benefit_direction``.
        """
        th = self._thresholds(None, None, None, required=False)
        direction = th.benefit if th else "lower"
        scale = "ratio" if (scale is None and self.ratio) else self._resolve_scale(scale)
        m = self.marginal(target)
        if thresholds is None:
            thresholds = (np.exp(np.linspace(0.0, 1.0, 51)) if scale == "ratio"
                          else np.linspace(0.0, max(3.0 * m.sd + abs(m.mean), 1e-9), 51))
        t = np.asarray(thresholds, dtype=float)
        if scale == "log":
            df = benefit_curve(m, np.exp(np.abs(t)), benefit=direction, ratio=True)
            df["threshold"] = t
        else:
            df = benefit_curve(m, t, benefit=direction, ratio=scale == "ratio")
        df.insert(0, "target", target)
        df["scale"] = scale
        df["benefit_direction"] = direction
        return df

    # ------------------------------------------------------------------ output
    def to_dict(self, mcid=None, benefit=None, harm=None, scale: str | None = None) -> dict:
        """Machine-readable result (what ``ketabayes analyse --json`` writes): strict JSON types."""
        scale = self._resolve_scale(scale)
        th = self._thresholds(mcid, benefit, harm, required=False)
        targets = self._default_targets()
        table = (self.decision_table(th.mcid, th.benefit, th.harm, targets=targets, scale=scale) if th is not None
                 else self._table(targets, 0.95, None, scale))
        out = {"model": self.model_type, "measure": self.measure, "scale": scale,
               "estimates": table.to_dict(orient="records")}
        s = self.summary(scale=scale, targets=[]).set_index("target")
        out["scales"] = {n: {k: s.loc[n, k] for k in ("mean", "median", "ci_low", "ci_high", "hpd_low", "hpd_high")}
                         for n in self.scale_names}
        out["tau"] = out["scales"].get(dims.TAU, {"mean": 0.0, "median": 0.0, "ci_low": 0.0, "ci_high": 0.0,
                                                  "hpd_low": 0.0, "hpd_high": 0.0})
        out["diagnostics"] = self.diagnostics.to_dict() if self.diagnostics is not None else {
            "engine": "exact", "note": "independent draws from the exact posterior; no MCMC diagnostics apply"}
        out["settings"] = dict(self.settings)
        if th is not None:
            out["settings"]["thresholds"] = th.to_dict()
        out.update(self._extra_dict())
        return json.loads(to_json(out))

    def _extra_dict(self) -> dict:
        return {}

    def _header(self) -> list[str]:
        s = self.settings
        if self._studies is not None:
            n = len(self._studies)
        else:
            n = self.tree["observed_data"].sizes.get(dims.STUDY, 0) if "observed_data" in self.tree.children else 0
        lines = [f"{type(self).__name__}: {self.model_type}, {n} trials, measure {self.measure}, engine {self.engine}"]
        for k, v in s.items():
            if k.startswith("prior_") and isinstance(v, dict) and "text" in v:
                lines.append(f"prior {k[6:]}: {v['text']}")
            elif k == "prior_sd" and isinstance(v, dict):
                lines += [f"prior sd[{g}]: {p['text']}" for g, p in v.items()]
        if self.diagnostics is not None:
            lines.append(f"diagnostics: {self.diagnostics}")
        if s.get("study_draws") is False:
            lines.append("study-level draws and log_likelihood not stored (large k); exact study marginals: "
                         "marginal(<study label>)")
        lines.append(f"data: {s.get('data_hash')}, seed {s.get('seed')}")
        return lines

    def __repr__(self) -> str:
        head = self._header()
        return "\n".join([f"<{head[0]}>"] + ["  " + x for x in head[1:]])

    def _repr_html_(self) -> str:
        head = self._header()
        parts = [f"<p><b>{html.escape(head[0])}</b><br>" + "<br>".join(html.escape(x) for x in head[1:]) + "</p>"]
        th = self.thresholds
        scale = "ratio" if self.ratio else None  # a ratio result is shown on the ratio scale
        if th is not None:
            tab = self.decision_table(scale=scale)
            cols = [c for c in ("target", "median", "ci_low", "ci_high", "p_benefit", "p_trivial", "p_harm")
                    if c in tab]
            parts.append(f"<p>{html.escape(th.describe(self.measure))}</p>")
        else:
            tab = self.summary(scale=scale, targets=self._default_targets())
            cols = [c for c in ("target", "mean", "sd", "median", "ci_low", "ci_high") if c in tab]
        parts.append(tab[cols].head(12).to_html(index=False, float_format=lambda x: f"{x:.3g}"))
        if len(tab) > 12:
            parts.append(f"<p>... {len(tab) - 12} more rows: decision_table() / summary()</p>")
        return "\n".join(parts)

    def to_netcdf(self, path) -> Path:
        """Save the tree, with every setting and a hash of its data in its root attributes, to a netCDF file."""
        path = Path(path)
        self.settings["content_hash"] = content_hash(self.tree)
        self._store_settings()
        self.tree.to_netcdf(path, engine="netcdf4")
        return path
