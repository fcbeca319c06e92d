"""SIMULATED trial-level data with the structure of the Cochrane review of NMDA antagonists for chronic pain.

:func:`simulate_review` draws a synthetic review with the review's 69 trial
comparisons (from its 67 trials): ketamine (39), memantine (10),
dextromethorphan (9), amantadine (3) and magnesium (8), in conditions such as CRPS, fibromyalgia and post-herpetic
neuralgia, parallel and crossover designs, 8 to 40 participants per arm, pain on
a 0-100 scale -- from true effects the user sets. The rows are labelled
``SIM-001``... and flagged ``simulated=True``; ``df.attrs["description"]`` says
they are not trial results. Used for parameter-recovery and calibration tests
and for benchmarks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["REVIEW_CONDITIONS", "REVIEW_DRUGS", "simulate_review"]

#: number of trial comparisons per drug in the review (69 comparisons from its 67 trials)
REVIEW_DRUGS = {"ketamine": 39, "memantine": 10, "dextromethorphan": 9, "amantadine": 3, "magnesium": 8}
#: conditions and their relative frequency
REVIEW_CONDITIONS = {"CRPS": 0.2, "fibromyalgia": 0.15, "post-herpetic neuralgia": 0.15,
                     "diabetic neuropathy": 0.2, "spinal cord injury": 0.1, "phantom-limb pain": 0.1,
                     "mixed neuropathic": 0.1}


def _effects(given, names, sigma, rng):
    if given is None:
        return {n: float(rng.normal(0.0, sigma)) for n in names}
    missing = [n for n in names if n not in given]
    if missing:
        raise ValueError(f"true effects missing for {missing}")
    return {n: float(given[n]) for n in names}


def simulate_review(mu: float = -8.0, *, tau: float = 4.0, sigma_drug: float = 5.0, sigma_condition: float = 3.0,
                    drug_effects: dict | None = None, condition_effects: dict | None = None,
                    drugs: dict | None = None, conditions: dict | None = None, sd: float = 22.0,
                    n_range: tuple = (8, 40), crossover_fraction: float = 0.3, rho: float = 0.5,
                    control_mean: float = 60.0, binary: dict | None = None, seed: int = 0) -> pd.DataFrame:
    """Simulate a review of pain trials by drug and condition (SIMULATED data, not trial results).

    True model for comparison ``i`` (mean difference, drug minus placebo, pain 0-100; negative = benefit)::

        theta_i = mu + drug_effect[drug_i] + condition_effect[condition_i] + e_i,  e_i ~ N(0, tau**2)

    Parameters
    ----------
    mu : float
        Overall mean difference.
    tau : float
        Residual between-trial SD.
    sigma_drug, sigma_condition : float
        SDs from which drug / condition effects are drawn when not given.
    drug_effects, condition_effects : dict, optional
        True effects per drug / condition (deviations from ``mu``).
    drugs : dict, optional
        Number of comparisons per drug (default :data:`REVIEW_DRUGS`: 39 + 10 + 9 + 3 + 8 = 69
        comparisons, from the review's 67 trials; one row per comparison).
    conditions : dict, optional
        Conditions and their probabilities (default :data:`REVIEW_CONDITIONS`).
    sd : float
        Within-arm SD of pain.
    n_range : (int, int)
        Range of participants per arm (uniform).
    crossover_fraction : float
        Share of crossover trials (same participants in both periods, within-person
        correlation ``rho``; ``vi = (sd1i**2 + sd2i**2 - 2 rho sd1i sd2i) / n``).
    control_mean : float
        Mean pain on placebo.
    binary : dict, optional
        Also simulate responders ``ai``/``ci`` (metafor's names) from a logit model with keys
        ``mu`` (log OR), ``tau``, ``sigma_drug``, ``sigma_condition``, ``baseline_risk``.
    seed : int

    Returns
    -------
    pandas.DataFrame
        Columns ``study, drug, condition, design, n1i, n2i, m1i, sd1i, m2i, sd2i, yi, vi, sei,
        theta_true, simulated`` (and ``ai, ci`` with ``binary``). ``attrs``: ``simulated=True``,
        ``description``, ``measure="MD"``, ``truth`` (all true values), ``seed``.

    Examples
    --------
    >>> from ketabayes.data.simulate import REVIEW_DRUGS, simulate_review
    >>> df = simulate_review(seed=1)
    >>> len(df), df.attrs["simulated"]  # one row per trial comparison
    (69, True)
    >>> df.drug.value_counts().to_dict() == REVIEW_DRUGS
    True
    """
    rng = np.random.default_rng(seed)
    drugs = dict(REVIEW_DRUGS if drugs is None else drugs)
    conditions = dict(REVIEW_CONDITIONS if conditions is None else conditions)
    cond_names = list(conditions)
    probs = np.array([conditions[c] for c in cond_names], dtype=float)
    probs = probs / probs.sum()
    d_eff = _effects(drug_effects, list(drugs), sigma_drug, rng)
    c_eff = _effects(condition_effects, cond_names, sigma_condition, rng)
    drug_col = [d for d, n in drugs.items() for _ in range(int(n))]
    k = len(drug_col)
    cond_col = list(rng.choice(cond_names, size=k, p=probs))
    design = np.where(rng.uniform(size=k) < crossover_fraction, "crossover", "parallel")
    theta = mu + np.array([d_eff[d] for d in drug_col]) + np.array([c_eff[c] for c in cond_col]) \
        + rng.normal(0.0, tau, size=k)
    n1 = rng.integers(n_range[0], n_range[1] + 1, size=k)
    n2 = np.where(design == "crossover", n1, rng.integers(n_range[0], n_range[1] + 1, size=k))
    cross = design == "crossover"
    base = control_mean + rng.normal(0.0, 5.0, size=k)
    # arm means: correlated within person for crossover trials
    z1 = rng.standard_normal(k)
    z2 = np.where(cross, rho * z1 + np.sqrt(1 - rho**2) * rng.standard_normal(k), rng.standard_normal(k))
    m2 = base + sd * z2 / np.sqrt(n2)
    m1 = base + theta + sd * z1 / np.sqrt(n1)
    sd1 = sd * np.sqrt(rng.chisquare(n1 - 1) / (n1 - 1))
    sd2 = sd * np.sqrt(rng.chisquare(n2 - 1) / (n2 - 1))
    yi = m1 - m2
    vi = np.where(cross, (sd1**2 + sd2**2 - 2 * rho * sd1 * sd2) / n1, sd1**2 / n1 + sd2**2 / n2)
    df = pd.DataFrame({
        "study": [f"SIM-{i + 1:03d}" for i in range(k)], "drug": drug_col, "condition": cond_col,
        "design": design, "n1i": n1, "n2i": n2, "m1i": m1, "sd1i": sd1, "m2i": m2, "sd2i": sd2,
        "yi": yi, "vi": vi, "sei": np.sqrt(vi), "theta_true": theta, "simulated": True})
    truth = {"mu": mu, "tau": tau, "sigma_drug": sigma_drug, "sigma_condition": sigma_condition,
             "drug_effects": d_eff, "condition_effects": c_eff, "sd": sd, "rho": rho}
    if binary is not None:
        b = {"mu": -0.7, "tau": 0.2, "sigma_drug": 0.3, "sigma_condition": 0.2, "baseline_risk": 0.25, **binary}
        bd = {d: float(rng.normal(0.0, b["sigma_drug"])) for d in drugs}
        bc = {c: float(rng.normal(0.0, b["sigma_condition"])) for c in cond_names}
        lor = b["mu"] + np.array([bd[d] for d in drug_col]) + np.array([bc[c] for c in cond_col]) \
            + rng.normal(0.0, b["tau"], size=k)
        l0 = np.log(b["baseline_risk"] / (1 - b["baseline_risk"])) + rng.normal(0.0, 0.3, size=k)
        df.insert(df.columns.get_loc("yi"), "ai", rng.binomial(n1, 1 / (1 + np.exp(-(l0 + lor)))))
        df.insert(df.columns.get_loc("yi"), "ci", rng.binomial(n2, 1 / (1 + np.exp(-l0))))
        df["logor_true"] = lor
        truth["binary"] = {**b, "drug_effects": bd, "condition_effects": bc}
    df.attrs.update(simulated=True, measure="MD", seed=seed, truth=truth,
                    description="SIMULATED data, not trial results: synthetic comparisons with the structure of "
                                "the Cochrane review of NMDA antagonists for chronic pain, drawn from the true "
                                "values in attrs['truth']")
    return df
