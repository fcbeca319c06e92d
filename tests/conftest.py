"""Shared fixtures: real data sets used across the tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="session")
def bcg():
    """BCG vaccine trials (metafor's dat.bcg; Colditz et al. 1994), log risk ratios computed here
    from the published 2x2 counts with the textbook formulas."""
    tpos = np.array([4, 6, 3, 62, 33, 180, 8, 505, 29, 17, 186, 5, 27])
    tneg = np.array([119, 300, 228, 13536, 5036, 1361, 2537, 87886, 7470, 1699, 50448, 2493, 16886])
    cpos = np.array([11, 29, 11, 248, 47, 372, 10, 499, 45, 65, 141, 3, 29])
    cneg = np.array([128, 274, 209, 12619, 5761, 1079, 619, 87892, 7232, 1600, 27197, 2338, 17825])
    n1, n2 = tpos + tneg, cpos + cneg
    yi = np.log(tpos / n1) - np.log(cpos / n2)
    vi = 1 / tpos - 1 / n1 + 1 / cpos - 1 / n2
    df = pd.DataFrame({"study": [f"BCG trial {i + 1}" for i in range(13)], "yi": yi, "vi": vi})
    df.attrs["measure"] = "RR"
    return df


@pytest.fixture(scope="session")
def magnesium_or():
    """Magnesium in acute MI (Egger et al. 2001), log odds ratios via ketabayes.effect_sizes
    (itself tested against metafor's published escalc values)."""
    import ketabayes as kb

    mg = kb.load_dataset("magnesium_mi")
    mg = mg.assign(study=mg["study"] + " " + mg["year"].astype(str))
    return kb.effect_sizes(mg, "OR")
