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
@click.option("--bma", is_flag=True, help="Bayesian model averaging over fixed/random x effect/no effect "
              "(needs proper --prior-mu and --prior-tau).")
@click.option("--bias", help='With --bma: bias models, "pet-peese", "robma" (36 models, slow: SMC) or names '
              'like "PET,PEESE,2s.05".')
def analyse(data, measure, mcid, harm, benefit, method, prior_mu, prior_tau, prior_sd, by, fixed, seed, draws,
            chains, study, outcome, strict, json_path, bma, bias):
    """Bayesian meta-analysis of DATA (CSV with metafor-named columns, or a RevMan .rm5/.csv file)."""
    import pandas as pd

    from ketabayes.reporting.text import format_decision_table, format_frequentist, format_revman
    from ketabayes.result.provenance import to_json

    if not data.exists():
        raise KetabayesError(f"no such file: {data}")
    es, m, label = _load_table(data, outcome, measure, study)
    if bias and not bma:
        raise KetabayesError("--bias needs --bma")
    if bma:
        if by or fixed or prior_sd:
            raise KetabayesError("--bma cannot be combined with --by, --fixed or --prior-sd")
        _analyse_bma(es, m, label, prior_mu, prior_tau, bias, mcid, benefit, harm, seed, json_path)
        return
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
    if json_path is not None:
        json_path.write_text(to_json(res.to_dict(), indent=2))
        click.echo(f"\nJSON written to {json_path}")


def _analyse_bma(es, m, label, prior_mu, prior_tau, bias, mcid, benefit, harm, seed, json_path):
    import pandas as pd

    from ketabayes.model.bma import bma
    from ketabayes.reporting.text import format_decision_table
    from ketabayes.result.provenance import to_json

    if bias and "," in bias:
        bias = [b.strip() for b in bias.split(",") if b.strip()]
    res = bma(es, prior_mu=prior_mu, prior_tau=prior_tau, bias=bias or None, mcid=mcid, benefit=benefit, harm=harm,
              measure=m, seed=seed)
    click.echo(f"Data: {label}")
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        click.echo("Bayesian model averaging: models")
        click.echo(res.models.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
        click.echo("\nInclusion Bayes factors:")
        click.echo(res.inclusion_table().to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    if mcid is not None:
        click.echo(f"\nDecision table, model-averaged ({res.thresholds.describe(m)}):")
        click.echo(format_decision_table(res.decision_table(), m, label_cols=("target",)))
    if json_path is not None:
        json_path.write_text(to_json(res.to_dict(), indent=2))
        click.echo(f"\nJSON written to {json_path}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
