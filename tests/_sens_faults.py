"""Fault injection for tests/test_sensitivity_faults.py (module level, so worker processes can import it)."""

import os
import time

from ketabayes.sensitivity import normal_analysis


def dying_analysis(data, variant, **kw):
    if variant.levels["prior_mu"] == "die":
        os._exit(3)
    return normal_analysis(data, variant, **kw)


def hanging_analysis(data, variant, **kw):
    if variant.levels["prior_mu"] == "hang":
        time.sleep(3600)
    return normal_analysis(data, variant, **kw)


def slow_analysis(data, variant, **kw):
    """Takes a moment, and records each call in the file named by $KB_CALLS (if set).

    With $KB_STALL_AFTER = N, variants ``n<i>`` with ``i >= N`` never finish (until the process is
    interrupted), so a grid cannot complete before the test's Ctrl-C arrives, however loaded the machine.
    """
    path = os.environ.get("KB_CALLS")
    if path:
        with open(path, "a") as f:
            f.write(variant.name + "\n")
    stall = os.environ.get("KB_STALL_AFTER")
    label = str(variant.levels.get("prior_mu", ""))
    if stall and label.startswith("n") and label[1:].isdigit() and int(label[1:]) >= int(stall):
        time.sleep(3600)
    time.sleep(0.15)
    return normal_analysis(data, variant, **kw)


def sleepy_analysis(data, variant, **kw):
    """Variant ``sleep`` takes 3 s (a hang that ends: an in-process worker's thread cannot be stopped)."""
    if variant.levels["prior_mu"] == "sleep":
        time.sleep(3.0)
    return normal_analysis(data, variant, **kw)
