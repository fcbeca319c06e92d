"""Command line: ``ketabayes demo``, ``ketabayes analyse DATA``, ``ketabayes datasets``.

Bad input gives a one-line error on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import click

from ketabayes.errors import KetabayesError
from ketabayes.result.decision import RATIO_MEASURES

MEASURES = ["MD", "SMD", "OR", "RR", "RD", "HR", "GEN"]


def _warning_line(message, category, filename, lineno, file=None, line=None):
    click.echo(f"ketabayes: warning: {message}", err=True)


class _Group(click.Group):
    """Turns ketabayes errors (and other expected failures) into one-line messages."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (KetabayesError, FileNotFoundError, IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
            click.echo(f"ketabayes: error: {exc}", err=True)
            ctx.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ketabayes")
def main():
    """Bayesian re-analysis of meta-analyses."""
    warnings.showwarning = _warning_line


@main.command()
@click.option("--out", "out_dir", default="ketabayes-demo-output", show_default=True,
              type=click.Path(file_okay=False), help="Folder for figures and saved results.")
@click.option("--mcid-pain", default=10.0, show_default=True,
              help="MCID for pain on the 0-100 scale (a choice: change it here).")
@click.option("--harm-ae", default=1.25, show_default=True,
              help="Harm threshold for adverse events, as a risk ratio.")
@click.option("--seed", default=20251, show_default=True)
@click.option("--no-nuts", is_flag=True, help="Skip the NUTS fit (exact engine only).")
def demo(out_dir, mcid_pain, harm_ae, seed, no_nuts):
    """Re-analyse the published Ferraro 2025 ketamine results, then a trial-level example."""
    from ketabayes.demo import run_demo

    run_demo(out_dir=Path(out_dir), mcid_pain=mcid_pain, harm_ae=harm_ae, seed=seed, nuts=not no_nuts)


@main.command("datasets")
def datasets_cmd():
    """List the bundled datasets with their citations."""
    import pandas as pd

    from ketabayes.data.datasets import list_datasets

    with pd.option_context("display.max_colwidth", 80, "display.width", 200):
        click.echo(list_datasets().to_string(index=False))


def _parse_prior_sd(values):
    out = {}
    for v in values:
        if "=" not in v:
            raise KetabayesError(f"--prior-sd takes COLUMN=PRIOR, e.g. drug=\"halfnormal(5)\"; got {v!r}")
        k, p = v.split("=", 1)
        out[k.strip()] = p.strip().strip("'\"")
    return out


def _load_table(path: Path, outcome: str | None, measure: str | None, study: str):
    """Read a CSV of metafor-named columns or a RevMan file; return (effect sizes, measure, label)."""
    import pandas as pd

    from ketabayes.data.effect_sizes import effect_sizes

    is_revman = path.suffix.lower() == ".rm5"
    if not is_revman and path.suffix.lower() == ".csv":
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            is_revman = fh.readline().startswith("Comparison Number")
    if is_revman:
        from ketabayes.data.revman import read_revman, split_analyses

        tidy = read_revman(path)
        analyses = list(split_analyses(tidy))
        if not analyses:
            raise KetabayesError(f"{path}: no analysable outcome found")
        names = "; ".join(f"{a.comparison_no}.{a.outcome_no} {a.outcome}" for a, _ in analyses)
        if outcome is None and len(analyses) > 1:
            raise KetabayesError(f"{path} holds {len(analyses)} outcomes; choose one with --outcome "
                                 f"(number like 1.2 or name): {names}")
        chosen = None
        for a, df in analyses:
            keys = {f"{a.comparison_no}.{a.outcome_no}", str(a.outcome).lower()}
            if outcome is None or outcome.lower() in keys:
                chosen = (a, df)
                break
        if chosen is None:
            raise KetabayesError(f"--outcome {outcome!r} not found in {path}; its outcomes are: {names}")
        a, df = chosen
        label = f"{a.comparison}: {a.outcome}"
        if a.data_type == "generic":
            # generic inverse-variance data enter as yi/sei; the measure names the scale for the
            # thresholds (a ratio measure means yi is a log ratio and the MCID a ratio)
            m = (measure or a.effect_measure or "GEN").upper()
            return effect_sizes(df, "GEN"), m, label
        m = (measure or a.measure or "").upper()
        if not m:
            raise KetabayesError(f"RevMan outcome {a.outcome!r} uses {a.effect_measure}; give --measure")
        return effect_sizes(df, m), m, label
    try:
        data = pd.read_csv(path)
    except pd.errors.ParserError as exc:
        raise KetabayesError(f"{path}: not a readable CSV file ({exc})") from None
    except pd.errors.EmptyDataError:
        raise KetabayesError(f"{path}: the file is empty") from None
    precomputed = "yi" in data.columns and bool({"vi", "sei"} & set(data.columns))
    arm_level = bool({"ai", "m1i"} & set(data.columns))
    if measure is None:
        if precomputed:
            measure = "GEN"
        else:
            raise KetabayesError(f"{path}: give --measure ({', '.join(MEASURES)}) for arm-level data")
    m = measure.upper()
    if precomputed and not arm_level:
        # precomputed effects: --measure names their scale (OR/RR/HR: yi is a log ratio, the MCID a ratio)
        if m in RATIO_MEASURES:
            click.echo(f"Note: yi is read as log {m} (natural log); --mcid and --harm are ratios.", err=True)
        return effect_sizes(data, "GEN", study=study), m, path.name
    return effect_sizes(data, m, study=study), m, path.name


@main.command()
@click.argument("data", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--measure", type=click.Choice(MEASURES, case_sensitive=False),
              help="Effect measure (read from RevMan files when omitted).")
@click.option("--mcid", type=float, help="Minimal clinically important difference (a ratio for OR/RR).")
@click.option("--harm", type=float, help="Harm threshold, if different from the MCID.")
@click.option("--benefit", type=click.Choice(["lower", "higher"]), default="lower", show_default=True,
              help="Direction of benefit.")
@click.option("--method", type=click.Choice(["exact", "nuts"]), default="exact", show_default=True)
@click.option("--prior-mu", help='Prior of the average effect, e.g. "normal(0, 50)" (default: flat).')
@click.option("--prior-tau", help='Prior of tau (and of every group scale with --by), e.g. "halfnormal(10)".')
@click.option("--prior-sd", multiple=True, help='Per-grouping scale prior with --by, e.g. drug="halfnormal(5)".')
@click.option("--by", help="Grouping columns for a hierarchical model, e.g. drug,condition.")
@click.option("--fixed", is_flag=True, help="Fixed-effect (common-effect) model.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--draws", type=int, default=1000, show_default=True, help="Draws per chain.")
@click.option("--chains", type=int, default=4, show_default=True)
@click.option("--study", default="study", show_default=True, help="Column with study labels.")
@click.option("--outcome", help="RevMan outcome to analyse (number like 1.2, or its name).")
@click.option("--strict", is_flag=True, help="Fail when NUTS diagnostics fail.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the machine-readable result here.")
@click.option("--next-trial", "next_n", help="Sizes per arm of a new trial to assess, e.g. 50,100,200 (needs --mcid).")
@click.option("--sd", type=float, help="Assumed outcome SD per arm of the new trial (MD).")
@click.option("--baseline-risk", type=float, help="Assumed control-arm risk of the new trial (OR/RR/RD).")
@click.option("--threshold", type=float, default=0.8, show_default=True,
              help="Posterior probability that settles the question (with --next-trial).")
def analyse(data, measure, mcid, harm, benefit, method, prior_mu, prior_tau, prior_sd, by, fixed, seed, draws,
            chains, study, outcome, strict, json_path, next_n, sd, baseline_risk, threshold):
    """Bayesian meta-analysis of DATA (CSV with metafor-named columns, or a RevMan .rm5/.csv file)."""
    import pandas as pd

    from ketabayes.reporting.text import format_decision_table, format_frequentist, format_revman
    from ketabayes.result.provenance import to_json

    if not data.exists():
        raise KetabayesError(f"no such file: {data}")
    es, m, label = _load_table(data, outcome, measure, study)
    if by:
        from ketabayes.model.hierarchical import HierarchicalModel

        if fixed:
            raise KetabayesError("--fixed cannot be combined with --by (a hierarchical model has random effects)")
        groups = [c.strip() for c in by.split(",") if c.strip()]
        model = HierarchicalModel(es, by=groups, prior_mu=prior_mu, prior_tau=prior_tau,
                                  prior_sd=_parse_prior_sd(prior_sd) or None, measure=m)
        targets = None
    else:
        if prior_sd:
            raise KetabayesError("--prior-sd needs --by")
        from ketabayes.model.random_effects import RandomEffectsModel

        model = RandomEffectsModel(es, prior_mu=prior_mu, prior_tau=prior_tau, fixed=fixed, measure=m)
        targets = ("mean", "predictive")
    click.echo(f"Data: {label}")
    click.echo(model.describe())
    res = model.fit(method, mcid=mcid, benefit=benefit, harm=harm, seed=seed, draws=draws, chains=chains,
                    strict=strict)
    if res.diagnostics is not None:
        click.echo(f"NUTS diagnostics: {res.diagnostics}")
    if mcid is not None:
        table = res.decision_table() if targets is None else res.decision_table(targets=targets)
        click.echo("")
        click.echo(f"Decision table ({res.thresholds.describe(m)}):")
        click.echo(format_decision_table(table, m, label_cols=("target", "observed")))
    else:
        click.echo("\n(give --mcid to get the probabilities of benefit, practically no effect and harm)")
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        click.echo("\nPosterior summary (95% equal-tailed intervals, analysis scale):")
        cols = ["target", "mean", "sd", "median", "ci_low", "ci_high"]
        click.echo(res.summary()[cols].to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    freq = res.frequentist_table() if hasattr(res, "frequentist_table") else []
    if len(freq):
        click.echo("\nFrequentist reference (metafor rma definitions):")
        click.echo(format_frequentist(freq, m))
    if not by:
        click.echo("\nFrequentist analysis as RevMan reports it:")
        click.echo(format_revman(model.yi, model.vi, m))
    out = res.to_dict()
    if next_n:
        out["next_trial"] = _next_trial_block(res, next_n, sd, baseline_risk, threshold, by)
    if json_path is not None:
        json_path.write_text(to_json(out, indent=2))
        click.echo(f"\nJSON written to {json_path}")


def _next_trial_block(res, next_n, sd, baseline_risk, threshold, by) -> dict:
    """Print and return the next-trial assessment (``--next-trial``)."""
    from ketabayes.result.next_trial import next_trial

    if by:
        raise KetabayesError("--next-trial needs a normal-normal model (without --by)")
    try:
        ns = [float(x) for x in next_n.split(",") if x.strip()]
    except ValueError:
        raise KetabayesError(f"--next-trial takes sizes per arm separated by commas, e.g. 50,100,200; got {next_n!r}") \
            from None
    nt = next_trial(res, ns, sd=sd, baseline_risk=baseline_risk, threshold=threshold)
    click.echo(f"\nThe next trial ({nt.assumptions['new_trial_variance']}):")
    cols = ["n_per_arm", "se_new", "assurance_benefit", "assurance_trivial", "assurance_harm", "evsi"]
    click.echo(nt.table[cols].to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    click.echo(nt.statement)
    return nt.to_dict()


def _published_spec(text, name):
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 4:
        raise KetabayesError(f"--{name} takes ESTIMATE,CI_LOW,CI_HIGH,MEASURE, e.g. -15.79,-32.09,0.51,MD; got {text!r}")
    try:
        return (float(parts[0]), float(parts[1]), float(parts[2]), parts[3].upper())
    except ValueError:
        raise KetabayesError(f"--{name}: the first three values must be numbers, got {text!r}") from None


@main.command()
@click.option("--efficacy", required=True, help="Published efficacy result: ESTIMATE,CI_LOW,CI_HIGH,MEASURE.")
@click.option("--harm", "harm_spec", required=True, help="Published harm result: ESTIMATE,CI_LOW,CI_HIGH,MEASURE.")
@click.option("--rho", type=float, default=None, help="Assumed correlation of the two estimates (default 0, stated).")
@click.option("--mcid", type=float, required=True, help="MCID of the efficacy outcome.")
@click.option("--harm-threshold", type=float, required=True, help="Harm threshold (a ratio for OR/RR).")
@click.option("--baseline-risk", type=float, help="Assumed baseline risk of the harm outcome (net benefit).")
@click.option("--weights", default="0,0.25,0.5,1,2", show_default=True,
              help="Trade-off weights: efficacy units per extra harm event per 100 patients.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path))
def joint(efficacy, harm_spec, rho, mcid, harm_threshold, baseline_risk, weights, json_path):
    """Joint benefit-harm answer from two published pooled results (assumed correlation stated)."""
    from ketabayes.model.bivariate import BivariateModel
    from ketabayes.result.provenance import to_json

    model = BivariateModel.from_published(_published_spec(efficacy, "efficacy"), _published_spec(harm_spec, "harm"),
                                          rho=rho)
    click.echo(model.describe())
    res = model.fit(mcid=mcid, harm_threshold=harm_threshold, seed=1)
    jt = res.joint_table()
    click.echo("\nJoint decision probabilities:")
    click.echo(jt[["target", "p_benefit_acceptable_harm", "p_benefit_unacceptable_harm",
                   "p_no_benefit_acceptable_harm", "p_no_benefit_unacceptable_harm"]].to_string(
        index=False, float_format=lambda x: f"{x:.4f}"))
    out = res.to_dict()
    if baseline_risk is not None:
        try:
            w = [float(x) for x in weights.split(",") if x.strip()]
        except ValueError:
            raise KetabayesError(f"--weights takes numbers separated by commas, got {weights!r}") from None
        nb = res.net_benefit(w, baseline_risk=baseline_risk)
        click.echo(f"\nNet benefit = gain - w x harm increase ({nb['harm_units'].iloc[0]}):")
        click.echo(nb[["weight", "mean_net", "p_net_benefit"]].to_string(index=False, float_format=lambda x: f"{x:.4g}"))
        out["net_benefit"] = nb.to_dict(orient="records")
    if json_path is not None:
        json_path.write_text(to_json(out, indent=2))
        click.echo(f"\nJSON written to {json_path}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
