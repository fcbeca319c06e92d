"""Hierarchical meta-analysis across drugs and conditions (partial pooling, meta-regression).

Model for trial ``i`` with estimate ``y_i`` and known sampling variance ``v_i``::

    y_i ~ N(theta_i, v_i)
    theta_i = mu + alpha[drug_i] + beta[condition_i] (+ delta[drug_i, condition_i]) + x_i' gamma + e_i
    alpha ~ N(0, sigma_drug**2),  beta ~ N(0, sigma_condition**2),  delta ~ N(0, sigma_interaction**2)
    e_i ~ N(0, tau**2)                                        (residual between-trial heterogeneity)

The grouping columns are the user's (``by=["drug", "condition"]``, any names;
any number of crossed groupings). Options:

* ``interaction=True``: a random effect for every combination of the ``by``
  levels (drug x condition), with its own scale;
* ``nest={"drug": "class"}``: drugs nested in classes -- a class effect with its own
  scale is added and a drug's effect is ``class effect + drug deviation``;
* ``moderators=["dose", "year"]``: numeric meta-regression terms ``x_i' gamma``.
  Moderators are centred at their mean over the trials, so ``mu`` and every
  group / cell target is the effect in a trial with average moderator values;
  the slopes are reported as targets ``"moderator=<name>"``.

Targets (rows of :meth:`HierarchicalResult.decision_table
<ketabayes.result.hierarchical_result.HierarchicalResult.decision_table>`):

========================================  ============  =================================================
target                                    kind          definition
========================================  ============  =================================================
``mean``                                  mean          ``mu``
``drug=ketamine``                         group         ``mu + alpha[ketamine]`` (+ its class effect)
``drug=ketamine|condition=CRPS``          cell          ``mu + alpha + beta (+ delta)``; also for cells
                                                        without trials (``observed=False``: a prediction
                                                        from the drug and condition effects)
``predictive|drug=ketamine|condition=CRPS``  predictive  a new trial in that cell: cell + ``e_new``
``predictive``                            predictive    a new trial of a new drug (in a new class) in a
                                                        new condition: ``mu + alpha_new + beta_new
                                                        (+ delta_new) + e_new``, i.e. ``mu`` plus
                                                        normal noise with variance ``tau**2 + sum of
                                                        all sigma**2``
========================================  ============  =================================================

With a single grouping column the cells are the groups, so only ``group`` rows
and their ``predictive|drug=...`` rows appear. Without groupings the model is
the normal-normal random-effects model and reproduces
:class:`~ketabayes.inference.exact.ExactNormalNormal`.

Default priors: ``mu`` and ``gamma`` flat (as bayesmeta's default for ``mu``);
``tau`` from :func:`~ketabayes.model.priors.default_tau_prior` for the measure
(``halfnormal(0.5)`` for log OR / log RR / SMD, ``halfnormal(0.5 x UISD)`` for
mean differences with sample sizes); every group scale uses ``prior_tau`` unless
``prior_sd={"drug": "halfnormal(5)"}`` overrides it (keys: the ``by`` columns,
nesting parents, ``"interaction"``; ``"*"`` sets all of them).
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ketabayes import dims
from ketabayes.decision import RATIO_MEASURES
from ketabayes.errors import DataError, DataWarning, KetabayesError, PriorError
from ketabayes.model._fit_common import (
    Described,
    check_method,
    constant_coords,
    default_tau_prior_for,
    draw_seed,
    fit_settings,
    group_constants,
    make_thresholds,
    nuts_engine_settings,
    prior_entry,
    record_sampler,
)
from ketabayes.model.priors import Flat, Normal, Prior, parse_prior

__all__ = ["HierarchicalDesign", "HierarchicalModel", "Target", "Term"]
INTERACTION = "interaction"


# ---------------------------------------------------------------------------- design
@dataclass
class Term:
    """One random-effect term: its name, coordinate name, levels and each trial's level."""

    name: str          # "drug", "class", "interaction"
    dim: str           # coordinate / dimension name ("drug", "drug_x_condition")
    levels: list
    index: np.ndarray  # level of each trial (int)
    kind: str = "group"  # "group", "parent" or "interaction"


@dataclass
class Target:
    """A reported quantity: ``a' (b, u)`` plus independent normal terms (predictions)."""

    name: str
    kind: str
    levels: dict
    observed: bool
    n_trials: int
    a: np.ndarray
    pred: np.ndarray   # bool per variance component (0 = tau)
    study: int = -1    # for a trial's shrunken effect: the trial's index (see ExactHierarchical, ``shrink``)


@dataclass
class HierarchicalDesign:
    """The model's structure computed from the data: terms, design matrices and targets."""

    by: list
    terms: list
    moderators: list
    X: np.ndarray           # (k, 1 + m): intercept, centred moderators
    x_means: dict
    Z: np.ndarray           # (k, r) indicators of all levels of all terms
    term_of_col: np.ndarray
    targets: list = field(default_factory=list)
    parent_of: dict = field(default_factory=dict)   # child by-column -> (parent name, child level -> parent level)

    @property
    def components(self) -> list[str]:
        """Names of the variance components: ``tau`` then one SD per term."""
        return [dims.TAU] + [f"sd_{t.dim}" for t in self.terms]

    @property
    def q(self) -> int:
        return self.X.shape[1]

    @property
    def offsets(self) -> list[int]:
        out, o = [], self.q
        for t in self.terms:
            out.append(o)
            o += len(t.levels)
        return out

    @property
    def A(self) -> np.ndarray:
        return np.array([t.a for t in self.targets])

    @property
    def pred(self) -> np.ndarray:
        return np.array([t.pred for t in self.targets])

    @property
    def shrink(self) -> np.ndarray:
        """Per target, the trial whose shrunken effect it is (-1 for every other target)."""
        return np.array([t.study for t in self.targets], dtype=int)

    def target_index(self) -> dict:
        return {t.name: i for i, t in enumerate(self.targets)}


def _label(x) -> str:
    if isinstance(x, (float, np.floating)) and float(x).is_integer():
        return str(int(x))
    return str(x).strip() if isinstance(x, str) else str(x)


def _group_column(df, col, labels) -> list[str]:
    from ketabayes.data.validation import _is_blank, _others

    raw = df[col].tolist()
    blank = np.flatnonzero([_is_blank(x) for x in raw])
    if blank.size:
        raise DataError(f"missing group label (expected the trial's {col}){_others(labels, blank)}; every trial "
                        "needs a level of each grouping column", study=labels[blank[0]], column=str(col))
    return [_label(x) for x in raw]


def _levels(values: list[str]) -> list[str]:
    """Levels in order of first appearance (the user's order, as in the table)."""
    return list(dict.fromkeys(values))


def build_design(df: pd.DataFrame, labels: list[str], by: list[str], moderators: list[str], interaction: bool,
                 nest: dict) -> HierarchicalDesign:
    """Terms, design matrices and targets of the hierarchical model (see the module docstring)."""
    from ketabayes.data.validation import numeric_column, require_column

    k = len(df)
    used = list(by)
    for col in by:
        require_column(df, col, purpose="a grouping column (by=...)")
    if len(set(by)) != len(by):
        raise KetabayesError(f"by={by!r} names a column twice")
    group_values = {col: _group_column(df, col, labels) for col in by}
    terms: list[Term] = []
    parent_of = {}
    for child, parent in (nest or {}).items():
        if child not in by:
            raise KetabayesError(f"nest={{{child!r}: {parent!r}}}: {child!r} must be one of the by columns {by!r}")
        require_column(df, parent, purpose=f"the group that {child!r} is nested in (nest=...)")
        if parent in by:
            raise KetabayesError(f"nest: the parent column {parent!r} must not also be in by={by!r}")
        pv = _group_column(df, parent, labels)
        mapping: dict[str, str] = {}
        for i, (c, p) in enumerate(zip(group_values[child], pv)):
            if mapping.setdefault(c, p) != p:
                raise DataError(f"{child} {c!r} is in {parent} {p!r} here but in {mapping[c]!r} in an earlier "
                                f"trial; with nest={{{child!r}: {parent!r}}} each {child} belongs to one {parent}",
                                study=labels[i], column=str(parent))
        parent_of[child] = (parent, mapping)
        lv = _levels(pv)
        terms.append(Term(parent, parent, lv, np.array([lv.index(x) for x in pv]), "parent"))
        used.append(parent)
    for col in by:
        lv = _levels(group_values[col])
        terms.append(Term(col, col, lv, np.array([lv.index(x) for x in group_values[col]]), "group"))
    by_levels = {col: _levels(group_values[col]) for col in by}
    cells = list(itertools.product(*[by_levels[c] for c in by])) if by else []
    trial_cells = list(zip(*[group_values[c] for c in by])) if by else []
    if interaction:
        if len(by) < 2:
            raise KetabayesError("interaction=True needs at least two grouping columns in by=...")
        cidx = {c: j for j, c in enumerate(cells)}
        terms.append(Term(INTERACTION, "_x_".join(by), ["|".join(c) for c in cells],
                          np.array([cidx[c] for c in trial_cells]), "interaction"))
    # moderators
    mods = list(moderators or [])
    X = np.ones((k, 1 + len(mods)))
    x_means = {}
    for j, m in enumerate(mods):
        if m in used:
            raise KetabayesError(f"{m!r} is both a grouping column and a moderator")
        x = numeric_column(df, m, labels, what=f"a number for the moderator {m!r} (code categorical moderators "
                                                "such as risk of bias as 0/1 columns)")
        if np.ptp(x) == 0:
            raise DataError(f"moderator {m!r} has the same value ({x[0]:g}) in every trial, so its slope "
                            "cannot be estimated; remove it", column=str(m))
        x_means[m] = float(x.mean())
        X[:, 1 + j] = x - x.mean()
    # random-effect design
    r = sum(len(t.levels) for t in terms)
    Z = np.zeros((k, r))
    term_of_col = np.empty(r, dtype=int)
    o = 0
    for g, t in enumerate(terms):
        Z[np.arange(k), o + t.index] = 1.0
        term_of_col[o:o + len(t.levels)] = g
        o += len(t.levels)
    design = HierarchicalDesign(by=list(by), terms=terms, moderators=mods, X=X, x_means=x_means, Z=Z,
                                term_of_col=term_of_col, parent_of=parent_of)
    design.targets = _targets(design, by_levels, cells, trial_cells, group_values)
    return design


def _targets(design: HierarchicalDesign, by_levels, cells, trial_cells, group_values) -> list[Target]:
    p = design.q + design.Z.shape[1]
    C = 1 + len(design.terms)
    offs = dict(zip([t.name for t in design.terms], design.offsets))
    term = {t.name: t for t in design.terms}
    k = design.X.shape[0]
    no_pred = np.zeros(C, dtype=bool)

    def unit(*idx):
        a = np.zeros(p)
        a[0] = 1.0
        for i in idx:
            a[i] += 1.0
        return a

    def level_cols(col, level):
        out = [offs[col] + term[col].levels.index(level)]
        if col in design.parent_of:
            parent, mapping = design.parent_of[col]
            out.append(offs[parent] + term[parent].levels.index(mapping[level]))
        return out

    out = [Target("mean", "mean", {}, True, k, unit(), no_pred.copy()),
           Target("predictive", "predictive", {}, True, k, unit(), np.ones(C, dtype=bool))]
    for col in design.by:
        if col in design.parent_of:
            parent, mapping = design.parent_of[col]
            pv = [mapping[x] for x in group_values[col]]
            for lv in term[parent].levels:
                out.append(Target(f"{parent}={lv}", "group", {parent: lv}, True, pv.count(lv),
                                  unit(offs[parent] + term[parent].levels.index(lv)), no_pred.copy()))
        for lv in by_levels[col]:
            n = group_values[col].count(lv)
            extra = {design.parent_of[col][0]: design.parent_of[col][1][lv]} if col in design.parent_of else {}
            out.append(Target(f"{col}={lv}", "group", {col: lv, **extra}, n > 0, n, unit(*level_cols(col, lv)),
                              no_pred.copy()))
    if not design.by:
        return out + _moderator_targets(design, p, no_pred)
    counts = {c: trial_cells.count(c) for c in cells}
    tau_only = no_pred.copy()
    tau_only[0] = True
    cell_rows, pred_rows = [], []
    for j, cell in enumerate(cells):
        idx = [i for col, lv in zip(design.by, cell) for i in level_cols(col, lv)]
        if INTERACTION in offs:
            idx.append(offs[INTERACTION] + j)
        a = unit(*idx)
        lv = dict(zip(design.by, cell))
        for col in design.by:
            if col in design.parent_of:
                lv[design.parent_of[col][0]] = design.parent_of[col][1][lv[col]]
        name = "|".join(f"{c}={v}" for c, v in zip(design.by, cell))
        n = counts[cell]
        if len(design.by) > 1:
            cell_rows.append(Target(name, "cell", lv, n > 0, n, a, no_pred.copy()))
        pred_rows.append(Target(f"predictive|{name}", "predictive", lv, n > 0, n, a.copy(), tau_only.copy()))
    return out + cell_rows + pred_rows + _moderator_targets(design, p, no_pred)


def study_targets(design: HierarchicalDesign, studies, data: pd.DataFrame, level_cols) -> list[Target]:
    """Each trial's shrunken effect ``theta_i`` as a target (for a shrinkage forest).

    ``theta_i = eta_i + e_i`` with the linear predictor ``eta_i = w_i' (b, u)`` (row ``a``);
    given the variance components the engines add the trial's own data exactly:
    ``theta_i | y, phi ~ N((1 - c) E[eta_i] + c y_i, (1 - c)^2 Var[eta_i] + c v_i)``,
    ``c = tau^2 / (tau^2 + v_i)``.
    """
    W = np.concatenate([design.X, design.Z], axis=1)
    C = 1 + len(design.terms)
    out = []
    for i, s in enumerate(studies):
        levels = {c: _label(data[c].iloc[i]) for c in level_cols}
        out.append(Target(str(s), "study", levels, True, 1, W[i].copy(), np.zeros(C, dtype=bool), study=i))
    return out


def _moderator_targets(design, p, no_pred) -> list[Target]:
    out = []
    for j, m in enumerate(design.moderators):
        a = np.zeros(p)
        a[1 + j] = 1.0
        out.append(Target(f"moderator={m}", "moderator", {}, True, design.X.shape[0], a, no_pred.copy()))
    return out


# ---------------------------------------------------------------------------- model
class HierarchicalModel(Described):
    """Bayesian hierarchical meta-analysis with partially pooled drug and condition effects.

    See the module docstring for the model, the targets and the default priors.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per trial comparison with ``yi``/``vi`` (or ``sei``) and the grouping columns.
    by : str or list of str
        Grouping columns (any names), e.g. ``["drug", "condition"]``; ``[]`` gives the
        ordinary random-effects model.
    moderators : list of str, optional
        Numeric columns for meta-regression (centred at their mean).
    interaction : bool
        Add a random effect per combination of the ``by`` levels.
    nest : dict, optional
        ``{"drug": "class"}``: drugs nested in classes (the parent column is not in ``by``).
    prior_mu : Prior or str
        ``normal(m, s)`` or ``flat()`` (default).
    prior_tau : Prior or str, optional
        Prior of the residual between-trial SD; also the default for every group scale.
    prior_sd : Prior, str or dict, optional
        Group-scale priors: one for all, or per grouping, e.g. ``{"drug": "halfnormal(5)"}``
        (keys: ``by`` columns, nesting parents, ``"interaction"``, ``"*"``).
    prior_gamma : Prior, str or dict, optional
        Priors of the moderator slopes (normal or flat; default flat), one for all or per moderator.
    measure : str, optional
        Effect measure (``MD, SMD, OR, RR, RD, GEN``), read from ``data.attrs`` when not given.
    study, yi, vi, sei : str
        Column names.

    Examples
    --------
    >>> from ketabayes.data.simulate import simulate_review
    >>> from ketabayes.model.hierarchical import HierarchicalModel
    >>> df = simulate_review(seed=1)
    >>> model = HierarchicalModel(df, by=["drug", "condition"], prior_mu="normal(0, 50)",
    ...                           prior_tau="halfnormal(10)")
    >>> result = model.fit(method="exact", mcid=10, seed=1)
    >>> table = result.decision_table()
    """

    def __init__(self, data: pd.DataFrame, by=(), *, moderators=None, interaction: bool = False,
                 nest: dict | None = None, prior_mu: Prior | str | None = None, prior_tau: Prior | str | None = None,
                 prior_sd=None, prior_gamma=None, measure: str | None = None, study: str = dims.STUDY_COL,
                 yi: str = "yi", vi: str = "vi", sei: str = "sei"):
        from ketabayes.data.consistency import measure_from_column
        from ketabayes.data.validation import as_dataframe, study_labels, validate_yi_vi, vi_from_sei

        df = as_dataframe(data).copy()
        if measure is None:
            measure = data.attrs.get("measure") if isinstance(data, pd.DataFrame) else None
        # a 'measure' column that mixes measures (OR and MD rows) is refused, also with measure= given
        measure = measure_from_column(df, measure, study_labels(df, study))
        self.measure = (measure or "GEN").upper()
        excluded = []
        if "estimable" in df.columns:
            mask = df["estimable"].astype(bool).to_numpy()
            excluded = [lab for lab, m in zip(study_labels(df, study), mask) if not m]
            df = df.loc[mask]
        if excluded:
            warnings.warn(f"{len(excluded)} trial(s) left out because their effect is not estimable on the "
                          f"{self.measure} scale (no events in either arm; use BinomialModel to keep them): "
                          f"{', '.join(excluded)}", DataWarning, stacklevel=2)
        self.excluded = excluded
        if vi not in df.columns and sei in df.columns:  # a negative sei is an error, not squared away
            df = df.assign(**{vi: vi_from_sei(df, sei, study_labels(df, study))})
        clean = validate_yi_vi(df, yi=yi, vi=vi, study=study)
        self.data = df.reset_index(drop=True)
        self.studies = clean[dims.STUDY_COL].tolist()
        self.yi = clean["yi"].to_numpy()
        self.vi = clean["vi"].to_numpy()
        self.by = [by] if isinstance(by, str) else list(by or [])
        self.interaction = bool(interaction)
        self.nest = dict(nest or {})
        self.columns = {"study": study, "yi": yi, "vi": vi}
        self.design = build_design(self.data, self.studies, self.by, [moderators] if isinstance(moderators, str)
                                   else list(moderators or []), self.interaction, self.nest)
        self.design.targets += study_targets(self.design, self.studies, self.data, self.by + list(self.nest.values()))
        # priors
        self.prior_mu = parse_prior(prior_mu) if prior_mu is not None else Flat()
        if not isinstance(self.prior_mu, (Normal, Flat)):
            raise PriorError(f"prior_mu must be normal(mean, sd) or flat(), got {self.prior_mu}")
        if prior_tau is not None:
            self.prior_tau = _scale_prior(prior_tau, "prior_tau")
        else:
            self.prior_tau = default_tau_prior_for(self.measure, self.data, self.vi, study)
        self.prior_sd = self._term_priors(prior_sd)
        self.prior_gamma = self._gamma_priors(prior_gamma)

    # -------------------------------------------------------------- priors
    def _term_priors(self, prior_sd) -> dict[str, Prior]:
        names = [t.name for t in self.design.terms]
        if prior_sd is None or isinstance(prior_sd, (str, Prior)):
            base = self.prior_tau if prior_sd is None else _scale_prior(prior_sd, "prior_sd")
            return {n: base for n in names}
        if not isinstance(prior_sd, dict):
            raise PriorError(f"prior_sd must be a prior, a string or a dict keyed by grouping, got {prior_sd!r}")
        from ketabayes.data.validation import closest

        base = _scale_prior(prior_sd["*"], "prior_sd") if "*" in prior_sd else self.prior_tau
        out = {n: base for n in names}
        for key, val in prior_sd.items():
            if key == "*":
                continue
            if key not in names:
                best = closest(key, names)
                raise PriorError(f"prior_sd: {key!r} is not a grouping of this model ({', '.join(names) or 'none'})"
                                 + (f"; did you mean {best!r}?" if best is not None else ""))
            out[key] = _scale_prior(val, f"prior_sd[{key!r}]")
        return out

    def _gamma_priors(self, prior_gamma) -> dict[str, Prior]:
        mods = self.design.moderators
        if prior_gamma is None or isinstance(prior_gamma, (str, Prior)):
            p = Flat() if prior_gamma is None else parse_prior(prior_gamma)
            out = {m: p for m in mods}
        else:
            unknown = [k for k in prior_gamma if k not in mods]
            if unknown:
                raise PriorError(f"prior_gamma: {unknown[0]!r} is not a moderator ({', '.join(mods) or 'none'})")
            out = {m: parse_prior(prior_gamma[m]) if m in prior_gamma else Flat() for m in mods}
        for m, p in out.items():
            if not isinstance(p, (Normal, Flat)):
                raise PriorError(f"the prior of the slope of {m!r} must be normal(mean, sd) or flat(), got {p}")
        return out

    @property
    def component_priors(self) -> list[Prior]:
        return [self.prior_tau] + [self.prior_sd[t.name] for t in self.design.terms]

    def _prior_entries(self) -> dict:
        """The priors as stored in the settings (``prior_mu, prior_tau, prior_sd, prior_gamma``)."""
        return {"prior_mu": prior_entry(self.prior_mu), "prior_tau": prior_entry(self.prior_tau),
                "prior_sd": {n: prior_entry(p) for n, p in self.prior_sd.items()},
                "prior_gamma": {n: prior_entry(p) for n, p in self.prior_gamma.items()}}

    # -------------------------------------------------------------- description
    @property
    def k(self) -> int:
        return len(self.yi)

    def describe(self) -> str:
        """Plain-text statement of the model, its groupings and priors."""
        d = self.design
        scale = " (log scale)" if self.measure in RATIO_MEASURES else ""
        parts = ["mu"]
        for t in d.terms:
            parts.append(f"{t.dim}_effect[{t.name}]" if t.kind != "interaction" else f"{t.dim}_effect[cell]")
        if d.moderators:
            parts.append("x' gamma")
        lines = [f"Hierarchical meta-analysis of {self.k} trials, measure {self.measure}{scale}",
                 "  y_i ~ N(theta_i, v_i), theta_i = " + " + ".join(parts + ["e_i"]) + ", e_i ~ N(0, tau^2)"]
        for t in d.terms:
            lines.append(f"  {t.name}: {len(t.levels)} levels, effects ~ N(0, sd_{t.dim}^2), "
                         f"prior sd_{t.dim}: {self.prior_sd[t.name].describe()}")
        lines.append(f"  prior mu:  {self.prior_mu.describe()}")
        lines.append(f"  prior tau: {self.prior_tau.describe()}")
        for m in d.moderators:
            lines.append(f"  moderator {m} (centred at {d.x_means[m]:.4g}), prior slope: {self.prior_gamma[m]}")
        n_unobs = sum(1 for t in d.targets if t.kind == "cell" and not t.observed)
        if n_unobs:
            lines.append(f"  {n_unobs} cell(s) without trials are reported as predictions (observed=False)")
        if self.excluded:
            lines.append(f"  left out (not estimable): {', '.join(self.excluded)}")
        return "\n".join(lines)

    def data_hash(self) -> str:
        from ketabayes.provenance import data_hash

        labels = [f"{s}\x1e" + "\x1e".join(str(self.data[c].iloc[i]) for c in self.by + list(self.nest.values()))
                  for i, s in enumerate(self.studies)]
        return data_hash(self.yi, self.vi, self.design.X, labels=labels, extra=self.measure)

    def spec(self) -> dict:
        """Everything needed to rebuild the model (stored with results)."""
        return {"by": self.by, "moderators": self.design.moderators, "interaction": self.interaction,
                "nest": self.nest, "measure": self.measure}

    # -------------------------------------------------------------- fitting
    def fit(self, method: str = "exact", *, mcid: float | None = None, benefit: str = "lower",
            harm: float | None = None, seed: int | None = None, draws: int = 1000, chains: int = 4,
            tune: int = 500, nuts: dict | None = None, strict: bool = False, progressbar: bool | None = None,
            grid=None, parameterization: str = "marginal", cache=None, **sample_kwargs):
        """Fit the model.

        Parameters
        ----------
        method : {"exact", "nuts"}
            ``"exact"``: quadrature over the variance components (up to four:
            tau and three group scales), every target's posterior an exact
            mixture of normals. ``"nuts"``: PyMC's NUTS with the trial effects
            integrated out and non-centred group effects.
        mcid, benefit, harm : optional
            Decision thresholds stored with the result
            (:class:`~ketabayes.decision.Thresholds`).
        seed : int, optional
            Random seed (drawn and recorded if not given).
        draws, chains, tune : int
            Draws per chain and chains (both engines; the exact engine's draws are
            independent); NUTS tuning steps. The NUTS defaults (4 x 1000 draws,
            500 tuning steps, ``target_accept=0.9``, marginal parameterisation) give
            bulk ESS >= 1000 for every target on the drug x condition benchmark.
        nuts : dict, optional
            Passed unchanged to the NUTS sampler (default ``{"target_accept": 0.9}``).
        strict : bool
            Raise :class:`~ketabayes.errors.ConvergenceError` when NUTS diagnostics fail.
        grid : GridSettings, optional
            Quadrature settings of the exact engine.
        parameterization : {"marginal", "noncentred"}
            NUTS only. ``"marginal"`` (default): NUTS on the variance components with
            every Gaussian quantity integrated out, which are then drawn exactly given
            each draw (see :mod:`ketabayes.inference.nuts_hierarchical`).
            ``"noncentred"``: the trial effects integrated out, ``mu``, ``gamma`` and
            non-centred group effects sampled by NUTS.
        cache : CompiledModelCache, optional
            NUTS only: sample with nutpie through this cache of compiled models, so that fits
            that differ only in data or prior parameters (same structure:
            :func:`~ketabayes.inference.nuts_hierarchical.hierarchical_key`) compile once; the
            draws equal an uncached fit's with the same seed. Of ``**sample_kwargs`` only
            ``cores`` is then accepted.
        **sample_kwargs
            Passed unchanged to ``pymc.sample``.

        Returns
        -------
        HierarchicalResult
        """
        from ketabayes.result.hierarchical_result import HierarchicalResult

        check_method(method)
        seed = draw_seed(seed)
        settings = fit_settings(
            "hierarchical", method, self.measure, structure=self.spec(), priors=self._prior_entries(),
            thresholds=make_thresholds(mcid, self.measure, benefit, harm), seed=seed, draws=draws, chains=chains,
            excluded=self.excluded, columns=self.columns, data_hash=self.data_hash())
        exact = None
        diagnostics = None
        if method == "exact":
            exact = self._exact(grid)
            settings["engine_settings"] = exact.settings.to_dict()
            tree = self._exact_tree(exact, seed, chains, draws)
        else:
            from ketabayes.inference import nuts_hierarchical as nh
            from ketabayes.inference.compiled_cache import sample_model
            from ketabayes.inference.diagnostics import check_convergence

            if parameterization not in ("marginal", "noncentred"):
                raise KetabayesError(f"parameterization must be 'marginal' or 'noncentred', got {parameterization!r}")
            build = nh.build_marginal if parameterization == "marginal" else nh.build_hierarchical
            nuts = {"target_accept": 0.9, **(nuts or {})}
            settings["engine_settings"] = nuts_engine_settings(tune, nuts, sample_kwargs,
                                                               parameterization=parameterization)
            tree = sample_model(lambda: build(self), cache=cache, key=lambda: nh.hierarchical_key(self, parameterization),
                                data=lambda: nh.hierarchical_data(self, parameterization), seed=seed, draws=draws,
                                tune=tune, chains=chains, nuts=nuts, progressbar=progressbar, **sample_kwargs)
            record_sampler(settings, tree)
            rng = np.random.default_rng([seed, 1])
            tree = (nh.complete_marginal(tree, self, rng) if parameterization == "marginal"
                    else nh.add_targets(tree, self, rng))
            diagnostics = check_convergence(tree, ["mu", *self.design.components, "effect"], strict=strict)
        tree = self._attach_data(tree)
        from ketabayes.inference.arviz_groups import add_hierarchical_groups

        priors = {dims.MU: self.prior_mu, dims.TAU: self.prior_tau,
                  **{f"sd_{t.dim}": self.prior_sd[t.name] for t in self.design.terms}}
        tree = add_hierarchical_groups(tree, self.yi, self.vi, self.studies, self.design, priors, self.prior_gamma,
                                       seed=seed)
        return HierarchicalResult(tree, settings, targets=self.design.targets, exact=exact,
                                  diagnostics=diagnostics, model=self)

    def pymc_model(self, parameterization: str = "marginal"):
        """The PyMC model the NUTS engine samples (for ``pm.sample_prior_predictive`` and other PyMC tools).

        ``"marginal"`` (the default engine): the variance components only, with the mean, coefficients and
        trial, group and cell effects integrated out of the likelihood exactly (a ``pm.Potential``: ``pm.sample_prior_predictive``
        draws the parameters and warns that it draws no data); ``"noncentred"``: the group effects sampled
        non-centred, with an observed likelihood. See :mod:`ketabayes.inference.nuts_hierarchical`.
        """
        from ketabayes.inference import nuts_hierarchical as nh

        if parameterization not in ("marginal", "noncentred"):
            raise KetabayesError(f"parameterization must be 'marginal' or 'noncentred', got {parameterization!r}")
        return (nh.build_marginal if parameterization == "marginal" else nh.build_hierarchical)(self)

    def _exact(self, grid=None, *, integrate: bool = True):
        from ketabayes.inference.exact_hierarchical import ExactHierarchical

        d = self.design
        return ExactHierarchical(self.yi, self.vi, d.X, [self.prior_mu, *self.prior_gamma.values()], d.Z,
                                 d.term_of_col, self.prior_tau, [self.prior_sd[t.name] for t in d.terms],
                                 d.A, d.pred, settings=grid, integrate=integrate, shrink=d.shrink)

    def _gaussian_part(self):
        """The Gaussian conditionals given the variance components (no quadrature)."""
        return self._exact(integrate=False)

    def _coords(self) -> dict:
        d = self.design
        coords = {dims.STUDY: self.studies, dims.TARGET: [t.name for t in d.targets]}
        for t in d.terms:
            coords[t.dim] = list(t.levels)
        if d.moderators:
            coords["moderator"] = list(d.moderators)
        return coords

    def _exact_tree(self, exact, seed, chains, draws):
        # xarray alone (no arviz import at all on the exact path: benchmarks/cold_start.py)
        from ketabayes.model._fit_common import draws_tree

        d = self.design
        rng = np.random.default_rng(seed)
        s = exact.sample(chains * draws, rng)
        shape = (chains, draws)
        post = {"mu": s["b"][:, 0].reshape(shape), dims.TAU: s["phi"][:, 0].reshape(shape)}
        dim_map = {"effect": [dims.TARGET]}
        if d.moderators:
            post["gamma"] = s["b"][:, 1:].reshape(*shape, -1)
            dim_map["gamma"] = ["moderator"]
        for g, (t, off) in enumerate(zip(d.terms, d.offsets)):
            post[f"sd_{t.dim}"] = s["phi"][:, 1 + g].reshape(shape)
            u = s["u"][:, off - d.q: off - d.q + len(t.levels)]
            post[f"{t.dim}_effect"] = u.reshape(*shape, -1)
            dim_map[f"{t.dim}_effect"] = [t.dim]
        post["effect"] = s["targets"].reshape(*shape, -1)
        return draws_tree({"posterior": post}, dim_map, self._coords())

    def _attach_data(self, tree):
        import xarray as xr

        obs = xr.Dataset({"y": ((dims.STUDY,), self.yi)}, coords={dims.STUDY: self.studies})
        const = {"vi": ((dims.STUDY,), self.vi), **group_constants(self)}
        tree["observed_data"] = xr.DataTree(obs)
        tree["constant_data"] = xr.DataTree(xr.Dataset(const, coords=constant_coords(self)))
        return tree


def _scale_prior(p, what) -> Prior:
    prior = parse_prior(p)
    if prior.support != "positive":
        raise PriorError(f"{what} must be a prior on a standard deviation > 0, got {prior}")
    return prior
