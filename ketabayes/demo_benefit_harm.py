"""Part 3 of ``ketabayes demo``: the joint benefit-harm question and the next-trial question for IV ketamine.

Kept apart from :mod:`ketabayes.demo` so the demo's other parts stay as they are. Every
assumption (the correlation of the two pooled estimates, the SD of pain on the 0-100 scale, the
baseline risk of adverse events, the heterogeneity of a new trial) is printed as an assumption.
"""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["run_benefit_harm"]

#: assumptions of part 3 (printed as such)
RHOS = (-0.3, 0.0, 0.3, 0.6)
SD_PAIN = 20.0
BASELINE_AE = 0.2
WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0)
TAU_NEW = "halfnormal(10)"
N_PER_ARM = (25, 50, 100, 200, 400, 1000)


def run_benefit_harm(pain, ae, pain_result, out_dir: Path, mcid_pain: float = 10.0, harm_ae: float = 1.25,
                     seed: int = 20251) -> dict:
    """Print the joint and next-trial answers; return the objects. ``pain``/``ae`` are rows of the published file."""
    from ketabayes.model.bivariate import BivariateModel
    from ketabayes.result.next_trial import next_trial

    eff = (float(pain["estimate"]), float(pain["ci_low"]), float(pain["ci_high"]), "MD")
    harm = (float(ae["estimate"]), float(ae["ci_low"]), float(ae["ci_high"]), "RR")
    click.echo(f"Question: is there a benefit beyond the MCID (pain MD < -{mcid_pain:g}) WITHOUT an unacceptable "
               f"increase in adverse events (RR < {harm_ae:g})?")
    click.echo("ASSUMPTION: the review does not report the correlation of the two pooled estimates; it is assumed")
    click.echo(f"  and varied over {', '.join(f'{r:g}' for r in RHOS)} (0 is the headline value).")
    rows, results = [], {}
    for rho in RHOS:
        res = BivariateModel.from_published(eff, harm, rho=rho).fit(mcid=mcid_pain, harm_threshold=harm_ae, seed=seed)
        results[rho] = res
        jt = res.joint_table().set_index("target").loc["mean"]
        rows.append((rho, jt))
    click.echo(f"  {'rho':>5}  {'benefit & acceptable harm':>26}  {'benefit & unacceptable':>22}  "
               f"{'no benefit & acceptable':>23}  {'no benefit & unacceptable':>25}")
    for rho, jt in rows:
        click.echo(f"  {rho:>5g}  {jt['p_benefit_acceptable_harm']:>26.3f}  {jt['p_benefit_unacceptable_harm']:>22.3f}"
                   f"  {jt['p_no_benefit_acceptable_harm']:>23.3f}  {jt['p_no_benefit_unacceptable_harm']:>25.3f}")
    head = results[0.0].joint_table().set_index("target").loc["mean"]
    click.echo(f"With the assumed correlation 0: P(benefit beyond the MCID and RR below {harm_ae:g}) = "
               f"{head['p_benefit_acceptable_harm']:.3f}; the benefit most probably comes with more adverse events "
               f"(P = {head['p_benefit_unacceptable_harm']:.3f}).")
    click.echo("")
    click.echo("Net benefit = pain reduction (points) - w x extra adverse events per 100 patients.")
    click.echo(f"ASSUMPTION: baseline risk of any adverse event on placebo {BASELINE_AE:g} (not reported here); "
               "w is a value judgement, so a range is shown.")
    nb = results[0.0].net_benefit(list(WEIGHTS), baseline_risk=BASELINE_AE)
    for r in nb.itertuples():
        click.echo(f"  w = {r.weight:<5g} mean net benefit {r.mean_net:8.2f} points; P(net benefit > 0) = "
                   f"{r.p_net_benefit:.3f}")
    figures = []
    try:
        import matplotlib.pyplot as plt

        from ketabayes.reporting.benefit_harm_plot import plot_benefit_harm, plot_next_trial

        fig = plot_benefit_harm(results[0.0])
        path = Path(out_dir) / "ketamine_benefit_harm_plane.png"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        figures.append(path)
    except ImportError as exc:  # pragma: no cover - matplotlib is a dependency
        click.echo(f"(figure skipped: {exc})")

    click.echo("")
    click.echo("The next trial: how large must a new IV ketamine trial be to settle the pain question?")
    click.echo(f"ASSUMPTION: SD of pain on the 0-100 scale = {SD_PAIN:g} in each arm (not reported in the source).")
    click.echo(f"Decision: the updated analysis (published likelihood + new trial, neutral prior) settles it when "
               f"P(benefit beyond {mcid_pain:g}), P(practically no effect) or P(harm) reaches 0.8.")
    out = {}
    for label, tau in (("no heterogeneity (optimistic)", None), (f"heterogeneity tau ~ {TAU_NEW} (assumed)", TAU_NEW)):
        nt = next_trial(pain_result, list(N_PER_ARM), sd=SD_PAIN, tau=tau)
        out[label] = nt
        t = nt.table
        click.echo(f"  New trial vs the average effect: {label}")
        click.echo(f"  {'n/arm':>7}  {'P(settled)':>10}  {'P(shows benefit)':>16}  {'P(shows no effect)':>18}  "
                   f"{'EVSI (points)':>13}")
        for r in t.itertuples():
            n = "inf" if r.n_per_arm == float("inf") else f"{r.n_per_arm:g}"
            click.echo(f"  {n:>7}  {r.p_settled:>10.3f}  {r.assurance_benefit:>16.3f}  {r.assurance_trivial:>18.3f}  "
                       f"{r.evsi:>13.3f}")
        click.echo("  " + nt.statement)
    try:
        import matplotlib.pyplot as plt

        fig = plot_next_trial(out[f"heterogeneity tau ~ {TAU_NEW} (assumed)"])
        path = Path(out_dir) / "ketamine_next_trial.png"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        figures.append(path)
    except ImportError as exc:  # pragma: no cover
        click.echo(f"(figure skipped: {exc})")
    for f in figures:
        click.echo(f"Figure: {f}")
    return {"joint": results, "net_benefit": nb, "next_trial": out}
