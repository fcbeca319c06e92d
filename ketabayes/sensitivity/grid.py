"""The grid: :class:`Sensitivity` (configure, inspect, run) and :func:`sensitivity_grid`."""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import itertools
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ketabayes import dims
from ketabayes.decision import Thresholds, VerdictRule
from ketabayes.errors import KetabayesError
from ketabayes.model.priors import Flat, HalfNormal, parse_prior, prior_panel
from ketabayes.sensitivity.analyses import _resolve
from ketabayes.sensitivity.checkpoint import Checkpoint
from ketabayes.sensitivity.data_factors import FrameSet, bias_levels, float_levels
from ketabayes.sensitivity.runner import n_workers, run_variants
from ketabayes.sensitivity.spec import (
    DATA_FACTORS,
    Variant,
    _describe_mask,
    _frame_digest,
    _level_id,
    _levels,
    _prior_dict,
    variant_seed,
)
from ketabayes.sensitivity.tables import SensitivityResult, build_table
from ketabayes.sensitivity.worker import failed_output

__all__ = ["Sensitivity", "sensitivity_grid"]


def _corr01(x) -> float:
    """A correlation across time windows: a number in [0, 1)."""
    from ketabayes.model.multivariate import _corr

    return _corr(x, "the correlation")


def _reference_model(frame: pd.DataFrame, measure, study: str, prior_tau):
    """Validate one frame as the normal-likelihood analyses will read it; its model (measure, default prior).

    Correlated estimates (several rows of one multi-arm or time-window trial) are validated
    under labels made unique by the arm or window, so repeated study labels are not reported.
    """
    from ketabayes.model.random_effects import RandomEffectsModel
    from ketabayes.sensitivity.structured import structure_of

    kind = structure_of(frame, study)
    if kind is not None:
        part = frame["arm"] if kind == "multiarm" and "arm" in frame.columns else frame.get("time")
        labels = frame[study].astype(str) + "|" + (part.astype(str) if part is not None else "")
        frame = frame.assign(**{study: labels.where(frame[study].astype(str).duplicated(keep=False),
                                                    frame[study].astype(str))})
    return RandomEffectsModel(frame, measure=measure, study=study, prior_tau=prior_tau)


class Sensitivity:
    """A grid of variants of one meta-analysis (configured here, fitted by :meth:`run`).

    Building the grid does no fitting: inspect :attr:`variants` / :meth:`describe`
    first, then call :meth:`run`.

    Parameters
    ----------
    data : pandas.DataFrame or dict
        Effect sizes (``yi``, ``vi`` and a study column, e.g. from
        :func:`ketabayes.effect_sizes`), with any further columns the subsets
        refer to (risk of bias, design, ...). Every row is passed to the
        analyses; rows with ``estimable == False`` (double-zero trials on a log
        scale) are left out by the normal-likelihood analyses, each variant
        recording a :class:`~ketabayes.errors.DataWarning` naming them in its
        ``warning`` column, and kept by the binomial likelihood.

        A dict ``{label: table}`` makes the data itself a factor (column ``data``):
        the first value is a table, later values tables or callables that receive
        the first table and return one (e.g. another extraction or conversion of
        the same trials). The default prior of tau is computed from the first.

        Rows need not be one independent estimate per trial: the contrasts of
        multi-arm trials (:func:`~ketabayes.data.multiarm.multiarm_contrasts`,
        several rows of one study with ``vi_control``) and estimates at several
        time windows (a ``time`` column; then ``rho_time`` is required) are
        fitted with their within-trial covariance by the random- and
        fixed-effect analyses (:mod:`ketabayes.sensitivity.structured`).
    prior_mu : prior, str, list or dict, optional
        Level(s) of the prior of ``mu``. ``"panel"`` expands to the sceptical /
        neutral / enthusiastic priors of :func:`~ketabayes.model.priors.prior_panel`
        built from the first MCID. A dict gives labels. Default: flat.
    prior_tau : prior, str, list or dict, optional
        Level(s) of the prior of ``tau``. Default: the measure's default
        (:func:`~ketabayes.model.priors.default_tau_prior`).
    mcid : float or list of float, optional
        MCID(s) on the reporting scale (ratios for OR/RR). Decision probabilities
        are computed for each from the same posterior (no refit).
    benefit : {"lower", "higher"}
    harm : float, optional
        Harm threshold if different from the MCID.
    model : str, callable, list or dict
        ``"random"`` and/or ``"fixed"``, any name registered with
        :func:`register_analysis` (e.g. ``"hierarchical"``), or analysis factories.
    likelihood : str or list
        ``"normal"`` (built in) and/or registered likelihoods (``"binomial"``).
    subsets : dict, optional
        ``{name: rows to keep}``: a boolean mask (aligned with ``data``), a
        :meth:`pandas.DataFrame.query` string, or a callable ``df -> mask``.
        The level ``"all"`` (every study) always comes first.
    leave_one_out : bool
        Add the subsets ``"without <study>"`` for every study.
    method : {"exact", "nuts"} or list
    r : float or list of float, optional
        Data factor (float column ``r``): the within-patient correlation assumed
        for every trial whose correlation was not reported (``assumed_r``:
        crossover trials of route ``"periods"``, paired measures built with
        ``r=``). Each level re-derives those trials
        (:func:`~ketabayes.data.crossover.with_assumed_r`); all other rows stay
        as they are.
    multiarm : str or list, optional
        Data factor: ``"correlated"`` (contrasts with their covariance),
        ``"combine"`` (arms merged), ``"split"`` (shared control divided), the
        Cochrane Handbook's alternatives (:func:`~ketabayes.data.multiarm.handle_multiarm`).
    conversions : {"included", "excluded"}, list or True, optional
        Data factor: ``"excluded"`` leaves out the trials whose values were
        converted (``converted == True``: means/SDs from medians, SEs from CIs,
        p or t, crossover SEs from an assumed r): "only trials that reported
        what the model needs". ``True`` gives both levels.
    rho_time, rho_between : float or list of float, optional
        Analysis assumptions (float columns) for estimates at several time
        windows: the within-trial correlation of the estimates across time, and
        of the true effects (default 0.5); see
        :meth:`~ketabayes.model.multivariate.MultivariateModel.from_time_points`.
    bias : str, BiasAdjustment, dict or list, optional
        Risk-of-bias adjustment (column ``bias``): ``"none"`` (unadjusted) and
        ``"RoB"`` (trials at high risk in column ``rob`` shifted by a bias towards
        benefit; ``mu`` is then the effect in the other trials), a
        :class:`~ketabayes.sensitivity.structured.BiasAdjustment` or a dict of
        :func:`ketabayes.bma`'s keywords (``rob``, ``rob_high``, ``prior_rob``).
        The bias prior is kb.bma's: given (``prior_rob``), or the cited ROBES 2018
        default for odds-ratio analyses whose ``rob`` column names its domain; else
        the grid refuses the level (no uncited default). Applies to ``model`` ``"random"``, ``"fixed"`` (needs a
        normal ``prior_mu``) and ``"bma"`` (adds the ``"RoB"`` models to the
        ensemble).
    targets : sequence of str
        ``"mean"``, ``"predictive"`` and/or study labels.
    design : {"factorial", "one-at-a-time"}
        Full crossing of all factors, or variation of one factor at a time
        around the first level of every factor.
    bayes_factor : bool
        Add ``bf10``, ``post_prob_h1`` and model-averaged probabilities
        (``*_avg``) for exact normal variants (needs proper priors for ``mu``;
        :mod:`ketabayes.inference.bayes_factor`).
    prior_prob_h1 : float
        Prior probability of an effect for the model average.
    power_scaling : sequence of float, optional
        Power-scaling exponents (e.g. ``(0.8, 1.25)``) for the prior and the
        likelihood of NUTS variants, applied by importance weighting.
    rule : VerdictRule, optional
        Verdict cut-offs (default 0.80 for each category).
    measure : str, optional
    study : str
        Study label column.
    fit_kwargs : dict, optional
        Passed to the analysis factory and on to ``fit`` (e.g. ``draws``, ``chains``,
        ``tune``, ``nuts={...}``).
    """

    def __init__(self, data: pd.DataFrame | Mapping, *, prior_mu=None, prior_tau=None, mcid=None,
                 benefit: str = "lower", harm: float | None = None, model="random", likelihood="normal",
                 subsets: Mapping | None = None, leave_one_out: bool = False, method="exact",
                 r=None, multiarm=None, conversions=None, rho_time=None, rho_between=None, bias=None,
                 targets=("mean", "predictive"), design: str = "factorial", bayes_factor: bool = False,
                 prior_prob_h1: float = 0.5, power_scaling: Sequence[float] | None = None,
                 rule: VerdictRule | None = None, measure: str | None = None, study: str = dims.STUDY_COL,
                 fit_kwargs: dict | None = None):
        if not isinstance(data, (pd.DataFrame, Mapping)):
            raise KetabayesError(f"data must be a pandas DataFrame of effect sizes (or a dict of them: the data "
                                 f"factor), got {type(data).__name__}")
        self.study = study
        # every combination of data-factor levels, built and checked now (milliseconds), with the subsets' rows
        self._frames = FrameSet(data, r=r, multiarm=multiarm, conversions=conversions, subsets=subsets,
                                leave_one_out=leave_one_out, study=study)
        self.data = self._frames.frames[self._frames.base_key]
        default_tau = {}

        def validate(frame: pd.DataFrame, base: bool) -> str:
            ref = _reference_model(frame, measure, study, None if (base and prior_tau is None) else HalfNormal(1.0))
            if base:
                default_tau["prior"] = ref.prior_tau
            return ref.measure

        self.measure = self._frames.validate(validate)
        self._estimable = (self.data["estimable"].astype(bool).to_numpy() if "estimable" in self.data.columns
                           else np.ones(len(self.data), dtype=bool))
        self.benefit = benefit
        self.harm = harm
        self.rule = rule or VerdictRule()
        self.targets = tuple(targets)
        if design not in ("factorial", "one-at-a-time"):
            raise KetabayesError(f"design must be 'factorial' or 'one-at-a-time', got {design!r}")
        self.design = design
        self.bayes_factor = bool(bayes_factor)
        self.prior_prob_h1 = float(prior_prob_h1)
        self.power_scaling = tuple(float(a) for a in power_scaling) if power_scaling else ()
        self.fit_kwargs = dict(fit_kwargs or {})

        # MCIDs (no refit)
        mcids = [] if mcid is None else (list(mcid) if isinstance(mcid, Sequence) else [mcid])
        self.thresholds = [Thresholds.for_measure(m, self.measure, benefit, harm) for m in mcids] or [None]
        self.mcid_labels = [f"{m:g}" for m in mcids] or [""]
        self.mcid_values = [float(m) for m in mcids] or [math.nan]

        # prior levels
        if isinstance(prior_mu, str) and prior_mu.strip().lower() == "panel":
            if self.thresholds[0] is None:
                raise KetabayesError("prior_mu='panel' needs an MCID (mcid=...) to define the priors")
            prior_mu = dict(prior_panel(self.thresholds[0].delta_benefit, benefit).priors)
        self._mu_levels = {k: parse_prior(v) for k, v in _levels(prior_mu, Flat()).items()}
        self._tau_levels = {k: parse_prior(v) for k, v in _levels(prior_tau, default_tau.get("prior")).items()}
        for lab, p in self._tau_levels.items():
            if p.support != "positive":
                raise KetabayesError(f"prior_tau level {lab!r} must be a prior on tau > 0, got {p}")
        if self.bayes_factor:
            for lab, p in self._mu_levels.items():
                if not p.proper:
                    from ketabayes.errors import PriorError

                    raise PriorError(f"bayes_factor=True needs proper priors for mu; level {lab!r} is {p}: "
                                     "give normal priors, e.g. prior_mu='panel'")
        self._model_levels = _levels(model, "random")
        self._lik_levels = {k: str(v) for k, v in _levels(likelihood, "normal").items()}
        self._method_levels = {k: str(v) for k, v in _levels(method, "exact").items()}
        for m in self._method_levels.values():
            if m not in ("exact", "nuts"):
                raise KetabayesError(f"method must be 'exact' or 'nuts', got {m!r}")
        # analyses must exist before anything runs
        self._factories = {}
        for mlab, mval in self._model_levels.items():
            for llab, lval in self._lik_levels.items():
                self._factories[(mlab, llab)] = _resolve(mval, lval)

        # analysis assumptions: correlations across time windows, risk-of-bias adjustment
        from ketabayes.sensitivity.structured import structure_of

        self._rho_time = float_levels(rho_time, "rho_time", _corr01)
        self._rho_between = float_levels(rho_between, "rho_between", _corr01)
        kinds = {k: structure_of(f, study) for k, f in self._frames.frames.items()}
        timed = [k for k, kind in kinds.items() if kind == "time"]
        correlated = [k for k, kind in kinds.items() if kind is not None]
        one_per_trial = [m for m in self._model_levels.values() if not callable(m) and m not in ("random", "fixed")]
        if correlated and (one_per_trial or set(self._lik_levels.values()) != {"normal"}):
            what = repr(one_per_trial[0]) if one_per_trial else "likelihood='binomial'"
            raise KetabayesError(f"model {what} takes one independent estimate per trial, but the data has correlated "
                                 f"estimates ({kinds[correlated[0]]}) [{self._frames.key_label(correlated[0])}]: "
                                 "use model 'random' or 'fixed' (they use the covariance), or multiarm='combine' / "
                                 "'split' for a level without correlated contrasts")
        if self._rho_time and not timed:
            raise KetabayesError(f"rho_time={list(self._rho_time.values())}: the data has no estimates at several time "
                                 "windows (a 'time' column with several rows per study)")
        if timed and not self._rho_time:
            raise KetabayesError("the data has estimates at several time windows per study (column 'time'): give the "
                                 "assumed within-trial correlation of the estimates across time, rho_time=... (one "
                                 "value or several: a factor of the grid); it is rarely reported")
        if self._rho_between and not self._rho_time:
            raise KetabayesError("rho_between is the correlation of true effects across time windows: it needs "
                                 "time-window data and rho_time")
        if self._rho_time and not self._rho_between:
            self._rho_between = {"0.5": 0.5}  # MultivariateModel.from_time_points' default, recorded in the table
        self._bias_levels = bias_levels(bias, benefit)
        for lab, b in list(self._bias_levels.items()):   # kb.bma's priors: cited default or an explicit one
            if b is not None:
                try:
                    self._bias_levels[lab] = b.resolved(self.measure)
                except KetabayesError as e:
                    raise type(e)(f"bias level {lab!r}: {e}") from None
        if any(b is not None for b in self._bias_levels.values()):
            odd = [m for m in self._model_levels.values() if not callable(m) and m not in ("random", "fixed", "bma")]
            if odd:
                raise KetabayesError(f"bias adjustment applies to model 'random', 'fixed' and 'bma', not {odd[0]!r}")
            if set(self._lik_levels.values()) != {"normal"}:
                raise KetabayesError("bias adjustment applies to the normal likelihood only")
            for lab, b in self._bias_levels.items():
                if b is None:
                    continue
                for key, f in self._frames.frames.items():
                    try:
                        x = b.indicator(f, study)
                    except KetabayesError as e:
                        raise KetabayesError(f"bias level {lab!r}: {e}") from None
                    if not x.any():
                        raise KetabayesError(f"bias level {lab!r}: no trial is at high risk of bias (column "
                                             f"{b.rob!r} never in {b.high}) [{self._frames.key_label(key)}], so "
                                             "the adjustment cannot change anything")

        self.variants = self._build_variants()

    # ------------------------------------------------------------------
    def _factor_levels(self) -> dict[str, list[str]]:
        fl = self._frames.levels()
        return {"prior_mu": list(self._mu_levels), "prior_tau": list(self._tau_levels),
                "model": list(self._model_levels), "likelihood": list(self._lik_levels),
                "bias": list(self._bias_levels) or ["none"], **fl,
                "rho_time": list(self._rho_time) or ["-"], "rho_between": list(self._rho_between) or ["-"],
                "subset": self._frames.subset_names(), "method": list(self._method_levels)}

    def _build_variants(self) -> list[Variant]:
        levels = self._factor_levels()
        names = list(levels)
        if self.design == "factorial":
            combos = list(itertools.product(*(levels[n] for n in names)))
        else:
            base = tuple(levels[n][0] for n in names)
            combos = [base]
            for j, n in enumerate(names):
                for lev in levels[n][1:]:
                    c = list(base)
                    c[j] = lev
                    combos.append(tuple(c))
        floats = {"r": self._frames.r, "rho_time": self._rho_time, "rho_between": self._rho_between}
        out = []
        for c in combos:
            lv = dict(zip(names, c))
            if self._model_levels[lv["model"]] == "fixed" or lv["model"] == "fixed":
                if len(self._tau_levels) > 1 and lv["prior_tau"] != levels["prior_tau"][0]:
                    continue  # tau priors do not enter a fixed-effect model: one variant suffices
                lv["prior_tau"] = "-"
            shown = [f"{n}={lv[n]}" for n in names if len(levels[n]) > 1 or n in ("prior_mu", "prior_tau")]
            name = " | ".join(shown)
            typed = {**lv, **{f: floats[f].get(lv[f], math.nan) for f in floats}}
            frame = tuple(lv[f] for f in DATA_FACTORS)
            rt = floats["rho_time"].get(lv["rho_time"])
            out.append(Variant(name=name, levels=typed, prior_mu=self._mu_levels[lv["prior_mu"]],
                               prior_tau=None if lv["prior_tau"] == "-" else self._tau_levels[lv["prior_tau"]],
                               model=str(self._model_levels[lv["model"]]) if not callable(
                                   self._model_levels[lv["model"]]) else lv["model"],
                               likelihood=self._lik_levels[lv["likelihood"]], subset=lv["subset"],
                               method=self._method_levels[lv["method"]], frame=frame, rho_time=rt,
                               rho_between=floats["rho_between"].get(lv["rho_between"]) if rt is not None else None,
                               bias=self._bias_levels.get(lv["bias"])))
        return out

    @property
    def n_fits(self) -> int:
        return len(self.variants)

    def describe(self) -> str:
        """Plain-text description of the grid."""
        lv = self._factor_levels()
        lines = [f"Sensitivity grid ({self.design}): {self.n_fits} fits x {len(self.mcid_labels)} MCID(s) x "
                 f"{len(self.targets)} target(s)"]
        for k, v in lv.items():
            lines.append(f"  {k:<11} {len(v):>3} level(s): {', '.join(v[:6])}{', ...' if len(v) > 6 else ''}")
        lines.append(f"  mcid        {', '.join(self.mcid_labels) or '-'} (benefit {self.benefit})")
        lines.append(f"  verdicts    {self.rule.describe()}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.describe()

    def settings(self, seed: int | None = None) -> dict:
        """Everything that determines the rows, as plain (JSON-able) data.

        Prior definitions (``to_dict``) under their labels, the row mask of every
        subset, all factor levels (callable analyses by module and qualified
        name), the design, targets, MCIDs, verdict rule, measure, study column,
        ``fit_kwargs``, a digest of the whole data frame (every column, so
        grouping columns count), a digest of every frame the data factors build,
        the data factors' and analysis assumptions' levels and ``seed``.
        :meth:`config_hash` hashes it.
        """
        return {
            "data": _frame_digest(self.data),
            "prior_mu": {k: _prior_dict(p) for k, p in self._mu_levels.items()},
            "prior_tau": {k: _prior_dict(p) for k, p in self._tau_levels.items()},
            "model": {k: _level_id(v) for k, v in self._model_levels.items()},
            "likelihood": dict(self._lik_levels), "method": dict(self._method_levels),
            "analyses": {f"{m}/{lk}": _level_id(f) for (m, lk), f in self._factories.items()},
            "frames": self._frames.settings(),
            "rho_time": self._rho_time, "rho_between": self._rho_between,
            "bias": {k: None if b is None else b.to_dict() for k, b in self._bias_levels.items()},
            "design": self.design, "targets": list(self.targets), "measure": self.measure, "study": self.study,
            "mcid": self.mcid_labels, "thresholds": [t.to_dict() if t else None for t in self.thresholds],
            "benefit": self.benefit, "harm": self.harm, "rule": repr(self.rule),
            "bayes_factor": self.bayes_factor, "prior_prob_h1": self.prior_prob_h1,
            "power_scaling": list(self.power_scaling), "fit_kwargs": repr(sorted(self.fit_kwargs.items())),
            "seed": None if seed is None else int(seed),
        }

    def config_hash(self, seed: int) -> str:
        """Hash of everything that determines the rows (:meth:`settings`); checkpoints are tied to it."""
        payload = json.dumps(self.settings(seed), sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def data_hash(self) -> str:
        """:func:`ketabayes.provenance.data_hash` of ``yi``, ``vi``, the study labels and all other columns."""
        from ketabayes.provenance import data_hash

        d = self.data
        return data_hash(d["yi"].to_numpy(float), d["vi"].to_numpy(float), labels=d[self.study].astype(str),
                         extra=_frame_digest(d))

    def grid_description(self) -> dict:
        """The grid as data: factor levels with the priors written out, subsets as the studies they keep.

        A subset is ``{"n": rows kept, "kept": [...]}`` or, when shorter,
        ``{"n": ..., "left_out": [...]}`` (so leave-one-out grids stay small).
        """
        studies = self.data[self.study].astype(str).to_numpy()
        return {
            "design": self.design, "n_fits": self.n_fits,
            "prior_mu": {k: {"prior": str(p), **_prior_dict(p)} for k, p in self._mu_levels.items()},
            "prior_tau": {k: {"prior": str(p), **_prior_dict(p)} for k, p in self._tau_levels.items()},
            "model": {k: _level_id(v) for k, v in self._model_levels.items()},
            "likelihood": dict(self._lik_levels), "method": dict(self._method_levels),
            "subset": {k: _describe_mask(self.subset_mask(k), studies) for k in self._frames.subset_names()},
            **self._frames.describe(),
            "rho_time": list(self._rho_time.values()), "rho_between": list(self._rho_between.values()),
            "bias": {k: None if b is None else {"adjustment": b.describe(), **b.to_dict()}
                     for k, b in self._bias_levels.items()},
            "mcid": self.mcid_labels, "targets": list(self.targets), "rule": self.rule.describe(),
            "bayes_factor": self.bayes_factor, "prior_prob_h1": self.prior_prob_h1,
            "power_scaling": list(self.power_scaling), "fit_kwargs": repr(sorted(self.fit_kwargs.items())),
            "study": self.study, "text": self.describe(),
        }

    # ------------------------------------------------------------------
    def subset_mask(self, name: str, frame: tuple | None = None) -> np.ndarray:
        """Boolean mask of the rows a subset keeps in the data of ``frame`` (a :attr:`Variant.frame`;
        default: the first level of every data factor)."""
        return self._frames.mask(name, frame)

    def variant_data(self, variant: Variant) -> pd.DataFrame:
        """The rows a variant's analysis receives: its data factors' frame, then its subset (a new table)."""
        return self._frames.rows(variant.frame, variant.subset)

    def _task(self, v: Variant, seed: int) -> dict:
        return {"variant": v, "data": self.variant_data(v),
                "seed": variant_seed(seed, v.name),
                "factory": self._factories[(v.levels["model"], v.levels["likelihood"])]}

    def _common(self, keep_results: bool) -> dict:
        return {"targets": self.targets, "thresholds": self.thresholds, "mcid_values": self.mcid_values,
                "rule": self.rule, "measure": self.measure, "keep_results": bool(keep_results),
                "bayes_factor": self.bayes_factor, "prior_prob_h1": self.prior_prob_h1,
                "power_scaling": self.power_scaling, "fit_kwargs": self.fit_kwargs, "study": self.study}
    def run(self, *, seed: int = 0, executor: cf.Executor | None = None, batch_size: int | None = None,
            progress: bool | None = None, checkpoint: str | Path | None = None, keep_results: bool = False,
            retry_failed: bool = True, timeout: float | None = None) -> SensitivityResult:
        """Fit every variant and collect the table.

        Parameters
        ----------
        seed : int
            Base seed; each variant's seed is :func:`variant_seed` ``(seed, name)``.
        executor : concurrent.futures.Executor, optional
            Where to run the fits (default: serially in this process), e.g. a
            ``ProcessPoolExecutor`` or a ``distributed.Client`` (or its ``get_executor()``). A worker
            that dies is recorded as a failed variant and the others complete
            (:mod:`ketabayes.sensitivity.runner`).
        batch_size : int, optional
            Variants per submitted task (default: 1 for NUTS, with a checkpoint or a
            timeout; otherwise enough to give each worker ~8 tasks).
        progress : bool, optional
            Show a tqdm progress bar (default: only when stderr is a terminal).
        checkpoint : str or Path, optional
            ``.jsonl`` (JSON lines) or ``.csv`` file. Every finished variant is appended as it
            completes; on a rerun with the same configuration they are read back and not
            refitted (failed ones are retried unless ``retry_failed=False``). A record torn by a
            crash is skipped with a :class:`~ketabayes.errors.DataWarning`.
        keep_results : bool
            Keep every fitted result (a :class:`~ketabayes.result.result.MetaResult` for the
            built-in analyses) in :attr:`SensitivityResult.results`; the exact path then
            builds full results (draws, DataTree, frequentist fit), which is slower.
        timeout : float, optional
            Seconds one variant may run; a slower one is recorded as failed
            (``TimeoutError`` in ``error``) and its worker stopped. Needs an executor.

        Returns
        -------
        SensitivityResult
        """
        from tqdm import tqdm  # not tqdm.auto: it warns in Jupyter without ipywidgets

        if timeout is not None and not (float(timeout) > 0):
            raise KetabayesError(f"timeout must be a positive number of seconds, got {timeout!r}")
        cfg = self.config_hash(seed)
        done_rows: dict[str, list[dict]] = {}
        ckpt = Checkpoint(checkpoint, cfg) if checkpoint is not None else None
        if ckpt is not None:
            for fit_id, (rows, ok) in ckpt.load().items():
                if ok or not retry_failed:
                    done_rows[fit_id] = rows
        todo = [v for v in self.variants if v.name not in done_rows]
        common = self._common(keep_results)
        results: dict[str, Any] = {}
        if progress is None:
            progress = bool(getattr(sys.stderr, "isatty", lambda: False)())
        if batch_size is None:
            if executor is None or timeout is not None or ckpt is not None or any(v.method == "nuts" for v in todo):
                batch_size = 1
            else:
                batch_size = max(1, math.ceil(len(todo) / (8 * n_workers(executor))))
        bar = tqdm(total=len(self.variants), initial=len(self.variants) - len(todo), disable=not progress,
                   desc="sensitivity", unit="fit")

        def handle(out: dict):
            done_rows[out["fit_id"]] = out["rows"]
            if keep_results and out["result"] is not None:
                results[out["fit_id"]] = out["result"]
            if ckpt is not None:
                ckpt.append(out["fit_id"], out["rows"], out["ok"])
            bar.update(1)

        def fail(v: Variant, message: str) -> dict:
            return failed_output(v, variant_seed(seed, v.name), self._frames.size(v.frame, v.subset), common, message)

        try:
            run_variants(todo, make_task=lambda v: self._task(v, seed), common=common, executor=executor,
                         batch_size=batch_size, timeout=timeout, handle=handle, fail=fail)
        finally:
            bar.close()
        table = build_table(self, done_rows)
        from ketabayes.provenance import package_versions

        table.attrs.update(seed=int(seed), config_hash=cfg, data_hash=self.data_hash(),
                           versions=package_versions(), grid=self.grid_description())
        return SensitivityResult(table=table, results=results, grid=self, seed=seed)


def sensitivity_grid(data: pd.DataFrame, *, seed: int = 0, executor: cf.Executor | None = None,
                     batch_size: int | None = None, progress: bool | None = None,
                     checkpoint: str | Path | None = None, keep_results: bool = False,
                     timeout: float | None = None, **grid) -> SensitivityResult:
    """Run a sensitivity grid in one call: ``Sensitivity(data, **grid).run(...)``.

    See :class:`Sensitivity` for the grid arguments and :meth:`Sensitivity.run`
    for ``seed``, ``executor``, ``batch_size``, ``progress``, ``checkpoint``,
    ``keep_results`` and ``timeout``.

    Examples
    --------
    >>> import ketabayes as kb
    >>> raw = kb.load_dataset("magnesium_mi")
    >>> raw["study"] = raw["study"] + " " + raw["year"].astype(str)
    >>> es = kb.effect_sizes(raw, "OR")
    >>> res = kb.sensitivity_grid(es, prior_mu="panel", prior_tau=["halfnormal(0.5)", "halfnormal(1)"],
    ...                           mcid=[1.1, 1.25], model=["random", "fixed"], progress=False)
    >>> len(res.table)  # (3 priors x 2 tau priors + 3 fixed-effect) x 2 MCIDs x 2 targets
    36
    >>> len(res.table[res.table.mcid == 1.25])  # numbers stay numbers
    18

    Two SIMULATED crossover trials, one of which reports only the period means and SDs: its
    within-patient correlation ``r`` is an assumption, and a factor of the grid.

    >>> import pandas as pd
    >>> reports = pd.DataFrame({"study": ["SIM-A", "SIM-B"], "m1i": [2.4, None], "sd1i": [2.1, None],
    ...                         "m2i": [4.0, None], "sd2i": [2.3, None], "ni": [24, 18],
    ...                         "mdi": [None, -1.1], "sddi": [None, 1.9]})
    >>> es = kb.crossover(reports, r=0.5)
    >>> grid = kb.sensitivity_grid(es, r=[0.5, 0.2, 0.8], prior_mu="normal(0, 10)", mcid=1.0,
    ...                            targets=["mean"], progress=False)
    >>> grid.table[["r", "label", "k"]]
         r  label  k
    0  0.5  r=0.5  2
    1  0.2  r=0.2  2
    2  0.8  r=0.8  2
    """
    return Sensitivity(data, **grid).run(seed=seed, executor=executor, batch_size=batch_size, progress=progress,
                                         checkpoint=checkpoint, keep_results=keep_results, timeout=timeout)
