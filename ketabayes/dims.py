"""Canonical dimension and variable names, defined once.

Every PyMC model and every :class:`xarray.DataTree` built by ketabayes uses
these names, so that summaries and plots are labelled consistently.
"""

from __future__ import annotations

__all__ = [
    "CHAIN", "DRAW", "STUDY", "TARGET", "VARIANT",
    "MU", "TAU", "THETA", "THETA_NEW", "STUDY_COL",
]

# dimensions
CHAIN = "chain"
DRAW = "draw"
STUDY = "study"
TARGET = "target"
VARIANT = "variant"

# variables in the posterior group
MU = "mu"                # average (population-mean) effect
TAU = "tau"              # between-study standard deviation
THETA = "theta"          # study-specific (shrunken) effects
THETA_NEW = "theta_new"  # effect in a new study (predictive distribution)

# column holding the study label in tidy tables
STUDY_COL = "study"
