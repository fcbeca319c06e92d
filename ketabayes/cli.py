"""Command line: ``ketabayes demo``, ``ketabayes analyse DATA``, ``ketabayes datasets``.

Trial designs other than parallel arms (``--design crossover | multiarm | time``), the per-study
provenance and grids over an assumed correlation (``--r 0.2,0.5,0.8``) are read and run by
:mod:`ketabayes.cli_designs`.

Exit status: 0 on success; 1 for a data or convergence error (bad or unreadable input file, a
failed strict NUTS run): one line ``ketabayes: error: ...`` on stderr, never a traceback; 2 for a
usage error (unknown or out-of-range option, options that do not go together, a bad prior string):
click's usage message, or one ``ketabayes: error:`` line for a prior.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import click

from ketabayes.cli_designs import (
    CROSSOVER_ROUTE_CHOICES,
    DESIGNS,
    assumption_grid,
    format_provenance,
    load_design,
    parse_values,
    provenance,
)
from ketabayes.data.effect_sizes import MEASURES as EFFECT_SIZE_MEASURES
from ketabayes.decision import RATIO_MEASURES
from ketabayes.errors import KetabayesError, PriorError
from ketabayes.reporting.text import sig

# what --measure accepts: every measure effect_sizes() computes, plus HR, which only names the scale of
# precomputed yi (log hazard ratios); arm-level data cannot give an HR
MEASURES = [*EFFECT_SIZE_MEASURES, "HR"]
SCALE_ONLY = ("HR",)
RATIO_ALIASES = {"PETO_OR": "OR"}  # RevMan measure names whose scale is that of a ketabayes ratio measure
ZERO_CELL_TO = ("only0", "all", "if0all", "none")  # effect_sizes(to=...), metafor's escalc
EXIT_DATA_ERROR = 1
EXIT_USAGE_ERROR = 2

EXIT_HELP = """\b
Exit status: 0 ok; 1 data or convergence error (one line
"ketabayes: error: ..." on stderr); 2 usage error (bad option or
option combination, bad prior string)."""


def _warning_line(message, category, filename, lineno, file=None, line=None):
    click.echo(f"ketabayes: warning: {message}", err=True)


class _Group(click.Group):
    """Turns ketabayes errors (and other expected failures) into one-line messages and exit statuses."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except PriorError as exc:  # priors reach the CLI only through --prior-* options: a usage error
            click.echo(f"ketabayes: error: {exc}", err=True)
            ctx.exit(EXIT_USAGE_ERROR)
        except (KetabayesError, FileNotFoundError, IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
            click.echo(f"ketabayes: error: {exc}", err=True)
            ctx.exit(EXIT_DATA_ERROR)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_HELP)
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
            raise click.BadParameter(f"takes COLUMN=PRIOR, e.g. drug=\"halfnormal(5)\"; got {v!r}",
                                     param_hint="--prior-sd")
        k, p = v.split("=", 1)
        out[k.strip()] = p.strip().strip("'\"")
    return out


def _parse_columns(values) -> dict[str, str]:
    """``--col ai=events_t`` (repeatable) -> {"ai": "events_t"}; metafor's argument names on the left."""
    out: dict[str, str] = {}
    for v in values:
        k, sep, col = v.partition("=")
        k, col = k.strip(), col.strip()
        if not sep or not k or not col:
            raise click.BadParameter(f"takes NAME=COLUMN, e.g. ai=events_t; got {v!r}", param_hint="--col")
        if k in out and out[k] != col:
            raise click.BadParameter(f"{k} is mapped twice ({out[k]!r} and {col!r})", param_hint="--col")
        out[k] = col
    return out


def _load_table(path: Path, outcome: str | None, measure: str | None, study: str, columns=None,
                zero_cells=None, note=click.echo, r: float | None = None, risk_of_bias: bool = False):
    """Read a CSV of metafor-named columns or a RevMan file; return (effect sizes, measure, label).

    ``columns`` maps metafor's argument names to the file's columns (CSV only); ``zero_cells`` holds
    ``add``, ``to`` and ``drop00`` for :func:`~ketabayes.data.effect_sizes.effect_sizes`; ``r`` is
    the assumed correlation of the paired measures (MC, SMCC, SMCR) where ``ri`` is blank.
    """

    from ketabayes.data.effect_sizes import effect_sizes

    columns = dict(columns or {})
    zero_cells = dict(zero_cells or {})
    is_revman = path.suffix.lower() == ".rm5"
    if not is_revman and path.suffix.lower() == ".csv":
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            is_revman = fh.readline().startswith("Comparison Number")
    if is_revman:
        from ketabayes.data.revman import read_revman, split_analyses

        if columns:
            raise click.UsageError("--col maps CSV columns; a RevMan file has fixed columns")
        # with --rob, a .rm5 file's risk-of-bias tables become rob_<domain> columns (RoB 1; read_revman_rob)
        tidy = read_revman(path, risk_of_bias=risk_of_bias and path.suffix.lower() == ".rm5")
        analyses = list(split_analyses(tidy))
        if not analyses:
            raise KetabayesError(f"{path}: no analysable outcome found")
        names = "; ".join(f"{a.comparison_no}.{a.outcome_no} {a.outcome}" for a, _ in analyses)
        if outcome is None and len(analyses) > 1:
            raise click.UsageError(f"{path} holds {len(analyses)} outcomes; choose one with --outcome "
                                   f"(number like 1.2 or name): {names}")
        chosen = None
        for a, df in analyses:
            keys = {f"{a.comparison_no}.{a.outcome_no}", str(a.outcome).lower()}
            if outcome is None or outcome.lower() in keys:
                chosen = (a, df)
                break
        if chosen is None:
            raise click.BadParameter(f"{outcome!r} not found in {path}; its outcomes are: {names}",
                                     param_hint="--outcome")
        a, df = chosen
        label = f"{a.comparison}: {a.outcome}"
        if a.data_type == "generic":
            # generic inverse-variance data enter as yi/sei; the measure names the scale for the
            # thresholds (a ratio measure means yi is a log ratio and the MCID a ratio)
            m = (measure or a.effect_measure or "GEN").upper()
            # RevMan's Peto odds ratio is an odds ratio: yi a log OR, the MCID a ratio
            m = RATIO_ALIASES.get(m, m)
            return effect_sizes(df, "GEN"), m, label
        m = (measure or a.measure or "").upper()
        if not m:
            raise click.UsageError(f"RevMan outcome {a.outcome!r} uses {a.effect_measure}; give --measure")
        if m in SCALE_ONLY:
            raise click.BadParameter(f"{m} names the scale of precomputed yi; RevMan outcome {a.outcome!r} "
                                     f"holds {a.data_type} data", param_hint="--measure")
        return effect_sizes(df, m, **zero_cells), m, label
    if outcome is not None:
        raise click.UsageError("--outcome chooses an outcome of a RevMan file; DATA is a plain CSV")
    from ketabayes.data.consistency import measure_from_column
    from ketabayes.data.csv_table import read_csv_table
    from ketabayes.data.validation import study_labels

    data = read_csv_table(path)  # row shapes and column names checked before pandas parses values
    # metafor's names present in the file, directly or through --col
    names = {c for c in data.columns if c not in columns.values()} | {k for k, v in columns.items()
                                                                      if v in data.columns}
    precomputed = "yi" in names and bool({"vi", "sei"} & names)
    arm_level = bool({"ai", "m1i"} & names)
    if precomputed and "measure" in data.columns:
        # a 'measure' column mixing OR and MD rows is refused (also with --measure); a single one names the scale
        measure = measure_from_column(data, measure, study_labels(data, study))
    if measure is None:
        if precomputed:
            measure = "GEN"
        else:
            raise click.UsageError(f"{path}: give --measure ({', '.join(EFFECT_SIZE_MEASURES)}) for arm-level data")
    m = measure.upper()
    if precomputed and not arm_level:
        # precomputed effects: --measure names their scale (OR/RR/HR: yi is a log ratio, the MCID a ratio)
        if m in RATIO_MEASURES:
            note(f"Note: yi is read as log {m} (natural log); --mcid and --harm are ratios.", err=True)
        return effect_sizes(data, "GEN", study=study, **columns), m, path.name
    if m in SCALE_ONLY:
        raise click.BadParameter(f"{m} works only with precomputed yi (log {m}) and vi or sei columns",
                                 param_hint="--measure")
    paired = {"r": r} if r is not None else {}
    return effect_sizes(data, m, study=study, **columns, **zero_cells, **paired), m, path.name


def _check_thresholds(mcid, measure, benefit, harm):
    """Threshold options that cannot work (e.g. an MCID of 1 for a ratio) are usage errors."""
    if mcid is None:
        if harm is not None:
            raise click.UsageError("--harm needs --mcid")
        return
    from ketabayes.decision import Thresholds

    try:
        Thresholds.for_measure(mcid, measure, benefit, harm)
    except KetabayesError as exc:
        raise click.BadParameter(str(exc), param_hint="--mcid/--harm") from None


@main.command(epilog=EXIT_HELP)
@click.argument("data", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--measure", type=click.Choice(MEASURES, case_sensitive=False),
              help="Effect measure (read from RevMan files when omitted; GEN for yi/vi columns). "
                   "HR only names the scale of precomputed yi (log hazard ratios).")
@click.option("--mcid", type=float, help="Minimal clinically important difference (a ratio for OR/RR/HR).")
@click.option("--harm", type=float, help="Harm threshold, if different from the MCID.")
@click.option("--benefit", type=click.Choice(["lower", "higher"]), default="lower", show_default=True,
              help="Direction of benefit.")
@click.option("--method", type=click.Choice(["exact", "nuts"]), default="exact", show_default=True)
@click.option("--likelihood", type=click.Choice(["normal", "binomial"]), default="normal", show_default=True,
              help="normal: each trial's estimate and its variance; binomial: the arms' event counts (ai, n1i, "
                   "ci, n2i; --measure OR), no continuity correction, zero-event and double-zero trials kept "
                   "(exact without --by, with one grouping; --method nuts for every form).")
@click.option("--prior-mu", help='Prior of the average effect, e.g. "normal(0, 50)" (default: flat).')
@click.option("--prior-tau", help='Prior of tau (and of every group scale with --by), e.g. "halfnormal(10)".')
@click.option("--prior-sd", multiple=True, help='Per-grouping scale prior with --by, e.g. drug="halfnormal(5)".')
@click.option("--by", help="Grouping columns for a hierarchical model, e.g. drug,condition.")
@click.option("--fixed", is_flag=True, help="Fixed-effect (common-effect) model.")
@click.option("--study", default="study", show_default=True, help="Column with study labels.")
@click.option("--col", "col", multiple=True, metavar="NAME=COLUMN",
              help="Map a metafor argument name to a CSV column, e.g. --col ai=events_t (repeatable).")
@click.option("--add", type=click.FloatRange(min=0), default=0.5, show_default=True,
              help="Zero cells of 2x2 tables (OR/RR/RD): amount added, as metafor's escalc.")
@click.option("--to", "to", type=click.Choice(ZERO_CELL_TO), default="only0", show_default=True,
              help="Zero cells: which tables get --add (metafor's 'to').")
@click.option("--drop00/--no-drop00", default=True, show_default=True,
              help="OR/RR: studies with no events (or only events) in both arms are not estimable and left "
                   "out; metafor's default is --no-drop00.")
@click.option("--outcome", help="RevMan outcome to analyse (number like 1.2, or its name).")
@click.option("--seed", type=click.IntRange(min=0), default=1, show_default=True)
@click.option("--draws", type=click.IntRange(min=1), default=1000, show_default=True, help="NUTS draws per chain.")
@click.option("--tune", type=click.IntRange(min=0),
              help="NUTS tuning steps per chain (default: the model's, 1000, or 500 with --by).")
@click.option("--chains", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--progress/--no-progress", default=None,
              help="NUTS progress bar (default: on when stderr is a terminal).")
@click.option("--strict", is_flag=True, help="Fail (exit 1) when NUTS diagnostics fail.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              help="Write the machine-readable result here; '-' writes it to stdout (the text report then "
                   "goes to stderr).")
@click.option("--quiet", "-q", is_flag=True, help="No text report (warnings and errors still go to stderr).")
@click.option("--bma", is_flag=True, help="Bayesian model averaging over fixed/random x effect/no effect "
              "(needs proper --prior-mu and --prior-tau).")
@click.option("--bias", help='With --bma: bias models, "pet-peese", "robma" (36 models) or names like '
              '"PET,PEESE,2s.05"; "RoB" (with --rob) shifts the trials at high risk of bias.')
@click.option("--rob", "rob_col", metavar="COLUMN",
              help='With --bma --bias RoB[,...]: column of risk-of-bias judgements (RoB 1 low/unclear/high or '
                   'RoB 2 low/some concerns/high, overall or one domain); trials judged high risk are shifted by '
                   'a bias.')
@click.option("--rob-high", metavar="LEVEL[,LEVEL...]",
              help="With --rob: judgements that count as high risk (default: the levels the bias prior was "
                   "estimated for, e.g. high,unclear for ROBES 2018; else high).")
@click.option("--prior-rob", help='With --rob: prior of the bias, e.g. "ROBES 2018:allocation_concealment", '
                                  '"BRANDO 2012:..." or a prior of its size such as "halfnormal(0.4)" (default for '
                                  'OR: the ROBES 2018 prior of the domain the column names).')
@click.option("--next-trial", "next_n", help="Sizes per arm of a new trial to assess, e.g. 50,100,200 (needs --mcid).")
@click.option("--sd", type=float, help="Assumed outcome SD per arm of the new trial (MD).")
@click.option("--baseline-risk", type=float, help="Assumed control-arm risk of the new trial (OR/RR/RD).")
@click.option("--threshold", type=float, default=0.8, show_default=True,
              help="Posterior probability that settles the question (with --next-trial).")
@click.option("--design", type=click.Choice(DESIGNS), default="parallel", show_default=True,
              help="What the rows of DATA report: parallel arms or effect sizes; crossover trials (mdi/sddi, ti, "
                   "pi, period means m1i/sd1i/m2i/sd2i/ni, or first-period m1i_p1...); arms of multi-arm trials "
                   "(study, arm, mi, sdi, ni or xi, ni; with --control); estimates at time windows (study, time, "
                   "yi, vi or sei; with --rho-time).")
@click.option("--r", "r_text", metavar="R[,R...]",
              help="Assumed within-patient correlation where a trial reports none (paired measures MC/SMCC/SMCR, "
                   "crossover period means). Never defaulted. Several values: the first is the analysis, all of "
                   "them a sensitivity grid.")
@click.option("--route", type=click.Choice(CROSSOVER_ROUTE_CHOICES), default="auto", show_default=True,
              help="--design crossover: how to build each trial's paired estimate (auto: the first route its row "
                   "reports, in the order listed).")
@click.option("--control", help="--design multiarm: label of the shared control arm.")
@click.option("--multiarm", "multiarm", type=click.Choice(["correlated", "combine", "split"]), default="correlated",
              show_default=True, help="--design multiarm: contrasts with their covariance, arms combined, or the "
                                      "control split (Cochrane Handbook 23.3.4).")
@click.option("--rho-time", "rho_time_text", metavar="RHO[,RHO...]",
              help="--design time: assumed within-trial correlation of the estimates across time windows, in "
                   "[0, 1). Several values: the first is the analysis, all of them a sensitivity grid.")
@click.option("--rho-between", type=click.FloatRange(0, 1, max_open=True), default=0.5, show_default=True,
              help="--design time: correlation of a trial's true effects across time windows.")
def analyse(data, measure, mcid, harm, benefit, method, likelihood, prior_mu, prior_tau, prior_sd, by, fixed, study, col, add,
            to, drop00, outcome, seed, draws, tune, chains, progress, strict, json_path, quiet, bma, bias, rob_col,
            rob_high, prior_rob, next_n, sd,
            baseline_risk, threshold, design, r_text, route, control, multiarm, rho_time_text, rho_between):
    """Bayesian meta-analysis of DATA (CSV with metafor-named columns, or a RevMan .rm5/.csv file).

    Every assumption is printed (per study: the crossover route, an assumed correlation, a
    converted summary) and, with --json, recorded under "provenance".
    """
    import pandas as pd

    from ketabayes.reporting.text import format_decision_table, format_frequentist, format_revman

    json_stdout = json_path is not None and str(json_path) == "-"

    def out(text="", err=False):
        if not quiet:
            click.echo(text, err=err or json_stdout)

    columns = _parse_columns(col)
    prior_sds = _parse_prior_sd(prior_sd)
    if by and fixed:
        raise click.UsageError("--fixed cannot be combined with --by (a hierarchical model has random effects)")
    if prior_sds and not by:
        raise click.UsageError("--prior-sd needs --by")
    r_values = parse_values(r_text, "--r")
    rt_values = parse_values(rho_time_text, "--rho-time", low=0.0, high=1.0, high_open=True)
    _check_design_options(design, r_values, rt_values, measure, outcome, control, multiarm, route, by, fixed, bma,
                          next_n, method)
    if bias and not bma:
        raise click.UsageError("--bias needs --bma")
    if (rob_high or prior_rob) and not rob_col:
        raise click.UsageError("--rob-high and --prior-rob need --rob")
    rob_models = bool(bias) and "rob" in {b.strip().lower() for b in bias.split(",")}
    if bool(rob_col) != rob_models:
        raise click.UsageError("the risk-of-bias model needs both --bias RoB (alone or in a list) and --rob COLUMN")
    binomial = likelihood == "binomial"
    if binomial:
        if design != "parallel" or fixed or bma or next_n:
            raise click.UsageError("--likelihood binomial models the arms' counts of parallel trials: it takes no "
                                   "--design, --fixed, --bma or --next-trial")
        if (measure or "OR").upper() != "OR":
            raise click.BadParameter(f"the binomial-logit model pools log odds ratios, not {measure}",
                                     param_hint="--measure")
        measure = "OR"
    multivariate = None
    if design == "parallel":
        es, m, label = _load_table(data, outcome, measure, study, columns,
                                   # binomial: the normal approximation's zero-cell handling is not used
                                   {"add": add, "to": to, "drop00": drop00 and not binomial}, note=out,
                                   r=r_values[0] if r_values else None, risk_of_bias=bool(rob_col))
    else:
        es, m, label, multivariate = load_design(data, design, measure=measure, study=study, columns=columns,
                                                 r=r_values[0] if r_values else None, route=route, control=control,
                                                 multiarm=multiarm, rho_time=rt_values[0] if rt_values else None,
                                                 rho_between=rho_between)
    _check_thresholds(mcid, m, benefit, harm)
    if binomial:
        es = _binomial_notes(es, columns, data)
    prov = provenance(es, "study" if "study" in es.columns else study)
    prov_text = format_provenance(prov)
    if prov_text:
        out("Per-study provenance (what was derived or assumed for each trial):")
        out(prov_text)
        out("")
    if bma:
        if by or fixed or prior_sd:
            raise click.UsageError("--bma cannot be combined with --by, --fixed or --prior-sd")
        rob = {"rob": rob_col, "prior_rob": prior_rob,
               "rob_high": tuple(x.strip() for x in rob_high.split(",") if x.strip()) if rob_high else None}
        _analyse_bma(es, m, label, prior_mu, prior_tau, bias, mcid, benefit, harm, seed, json_path, out,
                     extra={"provenance": prov.to_dict(orient="records")}, rob=rob if rob_col else None)
        return
    if multivariate is not None:
        _analyse_multivariate(multivariate(prior_mu, prior_tau), label, m, mcid, benefit, harm, seed, draws, chains,
                              json_path, out, prov, es, rt_values, study)
        return
    if binomial:
        from ketabayes.model.binomial import BinomialModel

        names = {k: columns.get(k, k) for k in ("ai", "n1i", "ci", "n2i")}
        groups = [c.strip() for c in by.split(",") if c.strip()] if by else []
        model = BinomialModel(es, by=groups, prior_mu=prior_mu, prior_tau=prior_tau, prior_sd=prior_sds or None,
                              study="study" if "study" in es.columns else study, **names)
        targets = None if by else ("mean", "predictive")
    elif by:
        from ketabayes.model.hierarchical import HierarchicalModel

        groups = [c.strip() for c in by.split(",") if c.strip()]
        model = HierarchicalModel(es, by=groups, prior_mu=prior_mu, prior_tau=prior_tau,
                                  prior_sd=prior_sds or None, measure=m)
        targets = None
    else:
        from ketabayes.model.random_effects import RandomEffectsModel

        model = RandomEffectsModel(es, prior_mu=prior_mu, prior_tau=prior_tau, fixed=fixed, measure=m)
        targets = ("mean", "predictive")
    out(f"Data: {label}")
    out(model.describe())
    fit_kwargs = {"tune": tune} if tune is not None else {}
    if method == "nuts":
        fit_kwargs["progressbar"] = sys.stderr.isatty() if progress is None else progress
    res = model.fit(method, mcid=mcid, benefit=benefit, harm=harm, seed=seed, draws=draws, chains=chains,
                    strict=strict, **fit_kwargs)
    if res.diagnostics is not None:
        out(f"NUTS diagnostics: {res.diagnostics}")
    if mcid is not None:
        table = res.decision_table() if targets is None else res.decision_table(targets=targets)
        out("")
        out(f"Decision table ({res.thresholds.describe(m)}):")
        out(format_decision_table(table, m, label_cols=("target", "observed")))
    else:
        out("\n(give --mcid to get the probabilities of benefit, practically no effect and harm)")
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        out("\nPosterior summary (95% intervals, analysis scale: ci_* equal-tailed, hpd_* shortest):")
        cols = ["target", "mean", "sd", "median", "ci_low", "ci_high", "hpd_low", "hpd_high"]
        out(res.summary()[cols].to_string(index=False, float_format=lambda x: sig(x, 4)))
    freq = res.frequentist_table() if hasattr(res, "frequentist_table") else []
    if len(freq):
        out("\nFrequentist reference (metafor rma definitions):")
        out(format_frequentist(freq, m))
    if not by and not binomial:
        out("\nFrequentist analysis as RevMan reports it:")
        out(format_revman(model.yi, model.vi, m))
    payload = res.to_dict()
    payload["provenance"] = prov.to_dict(orient="records")
    if next_n:
        payload["next_trial"] = _next_trial_block(res, next_n, sd, baseline_risk, threshold, by, out)
    if len(r_values) > 1:
        text, payload["sensitivity"] = assumption_grid(
            es, "r", r_values, measure=m, prior_mu=prior_mu, prior_tau=model.prior_tau, fixed=fixed, mcid=mcid,
            benefit=benefit, harm=harm, seed=seed, study="study", targets=("mean", "predictive"))
        out("")
        out(text)
    _write_json(payload, json_path, out)


def _binomial_notes(es, columns, path):
    """The per-study notes of a binomial analysis: the counts enter as they are, so a zero-cell note of the
    normal approximation (a continuity correction, "not estimable") is replaced by what the model does."""
    import numpy as np
    import pandas as pd

    names = {k: columns.get(k, k) for k in ("ai", "n1i", "ci", "n2i")}
    missing = [f"{k} ({v})" if v != k else k for k, v in names.items() if v not in es.columns]
    if missing:
        raise click.UsageError(f"--likelihood binomial needs the arms' counts: {', '.join(missing)} not in "
                               f"{path.name}")
    a, n1, c, n2 = (pd.to_numeric(es[names[k]], errors="coerce").to_numpy(dtype=float)
                    for k in ("ai", "n1i", "ci", "n2i"))
    zero = (a == 0) | (c == 0) | (a == n1) | (c == n2)
    double = ((a == 0) & (c == 0)) | ((a == n1) & (c == n2))
    out = es.copy()
    out["note"] = np.where(double, "double-zero trial: kept, its counts enter the binomial likelihood as they are",
                           np.where(zero, "zero-event arm: the counts enter the binomial likelihood as they are "
                                          "(no continuity correction)", ""))
    return out


def _write_json(payload: dict, json_path, out) -> None:
    from ketabayes.provenance import to_json

    if json_path is None:
        return
    text = to_json(payload, indent=2)
    if str(json_path) == "-":
        click.echo(text)
    else:
        json_path.write_text(text)
        out(f"\nJSON written to {json_path}")


def _check_design_options(design, r_values, rt_values, measure, outcome, control, multiarm, route, by, fixed, bma,
                          next_n, method):
    """Options that belong to another design, or that a design cannot use, are usage errors."""
    from ketabayes.data.paired import PAIRED_MEASURES

    if design != "parallel" and outcome is not None:
        raise click.UsageError(f"--design {design} reads a plain CSV; --outcome chooses an outcome of a RevMan file")
    if r_values and not (design == "crossover" or (design == "parallel" and (measure or "").upper()
                                                   in PAIRED_MEASURES)):
        raise click.UsageError("--r is the assumed within-patient correlation of paired measures (--measure MC, "
                               "SMCC, SMCR) and crossover trials (--design crossover)")
    if rt_values and design != "time":
        raise click.UsageError("--rho-time belongs to --design time")
    if design != "crossover" and route != "auto":
        raise click.UsageError("--route belongs to --design crossover")
    if design != "multiarm" and (control is not None or multiarm != "correlated"):
        raise click.UsageError("--control and --multiarm belong to --design multiarm")
    grid = len(r_values) > 1 or len(rt_values) > 1
    if grid and (by or bma):
        raise click.UsageError("a grid over --r / --rho-time runs the normal-normal model: drop --by / --bma")
    correlated = design == "time" or (design == "multiarm" and multiarm == "correlated")
    if correlated and (by or fixed or bma or next_n or method != "exact"):
        raise click.UsageError(f"--design {design}{' --multiarm correlated' if design == 'multiarm' else ''} is "
                               "fitted by the exact multivariate model: it takes no --by, --fixed, --bma, "
                               "--next-trial or --method nuts (combine the arms or split the control with "
                               "--multiarm for those)")


def _analyse_multivariate(model, label, m, mcid, benefit, harm, seed, draws, chains, json_path, out, prov, data,
                          rt_values, study):
    """Multi-arm contrasts with their covariance, or estimates at several time windows (exact)."""
    import pandas as pd

    from ketabayes.reporting.text import format_decision_table

    out(f"Data: {label}")
    out(model.describe())
    res = model.fit(mcid=mcid, benefit=benefit, harm=harm, seed=seed, draws=draws, chains=chains)
    labels = ("target", "time") if model.factor == "time" else ("target",)
    if mcid is not None:
        out("")
        out(f"Decision table ({res.thresholds.describe(m)}):")
        out(format_decision_table(res.decision_table(), m, label_cols=labels))
    else:
        out("\n(give --mcid to get the probabilities of benefit, practically no effect and harm)")
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        out("\nPosterior summary (95% equal-tailed intervals, analysis scale):")
        cols = ["target", "mean", "sd", "median", "ci_low", "ci_high"]
        out(res.summary()[cols].to_string(index=False, float_format=lambda x: sig(x, 4)))
        freq = res.frequentist_table()
        if len(freq):
            out("\nFrequentist reference (metafor rma.mv with the same covariance):")
            out(freq.to_string(index=False, float_format=lambda x: sig(x, 4)))
    payload = res.to_dict()
    payload["provenance"] = prov.to_dict(orient="records")
    if len(rt_values) > 1:
        targets = tuple(f"mean|time={t}" for t in model.coef_names)
        text, payload["sensitivity"] = assumption_grid(
            data, "rho_time", rt_values, measure=m, prior_mu=model.prior_mu, prior_tau=model.prior_tau, fixed=False,
            mcid=mcid, benefit=benefit, harm=harm, seed=seed, study=study, targets=targets)
        out("")
        out(text)
    _write_json(payload, json_path, out)


def _analyse_bma(es, m, label, prior_mu, prior_tau, bias, mcid, benefit, harm, seed, json_path, out, extra=None,
                 rob=None):
    import pandas as pd

    from ketabayes.model.bma import bma
    from ketabayes.reporting.text import format_decision_table

    if bias and "," in bias:
        bias = [b.strip() for b in bias.split(",") if b.strip()]
    if rob and rob["rob"] not in es.columns:
        from ketabayes.errors import DataError

        raise DataError(f"--rob names no column of {label}", column=rob["rob"])
    res = bma(es, prior_mu=prior_mu, prior_tau=prior_tau, bias=bias or None, mcid=mcid, benefit=benefit, harm=harm,
              measure=m, seed=seed, **(rob or {}))
    out(f"Data: {label}")
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        out("Bayesian model averaging: models")
        out(res.models.to_string(index=False, float_format=lambda x: sig(x, 4)))
        out("\nInclusion Bayes factors:")
        out(res.inclusion_table().to_string(index=False, float_format=lambda x: sig(x, 4)))
    if mcid is not None:
        out(f"\nDecision table, model-averaged ({res.thresholds.describe(m)}):")
        out(format_decision_table(res.decision_table(), m, label_cols=("target",)))
    _write_json({**res.to_dict(), **(extra or {})}, json_path, out)


def _next_trial_block(res, next_n, sd, baseline_risk, threshold, by, out) -> dict:
    """Print and return the next-trial assessment (``--next-trial``)."""
    from ketabayes.result.next_trial import next_trial

    if by:
        raise click.UsageError("--next-trial needs a normal-normal model (without --by)")
    try:
        ns = [float(x) for x in next_n.split(",") if x.strip()]
    except ValueError:
        raise click.UsageError(f"--next-trial takes sizes per arm separated by commas, e.g. 50,100,200; "
                               f"got {next_n!r}") from None
    nt = next_trial(res, ns, sd=sd, baseline_risk=baseline_risk, threshold=threshold)
    out(f"\nThe next trial ({nt.assumptions['new_trial_variance']}):")
    cols = ["n_per_arm", "se_new", "assurance_benefit", "assurance_trivial", "assurance_harm", "evsi"]
    out(nt.table[cols].to_string(index=False, float_format=lambda x: sig(x, 4)))
    out(nt.statement)
    return nt.to_dict()


def _published_spec(text, name):
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 4:
        raise click.UsageError(f"--{name} takes ESTIMATE,CI_LOW,CI_HIGH,MEASURE, e.g. -15.79,-32.09,0.51,MD; "
                               f"got {text!r}")
    try:
        return (float(parts[0]), float(parts[1]), float(parts[2]), parts[3].upper())
    except ValueError:
        raise click.UsageError(f"--{name}: the first three values must be numbers, got {text!r}") from None


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
    from ketabayes.provenance import to_json

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
            raise click.UsageError(f"--weights takes numbers separated by commas, got {weights!r}") from None
        nb = res.net_benefit(w, baseline_risk=baseline_risk)
        click.echo(f"\nNet benefit = gain - w x harm increase ({nb['harm_units'].iloc[0]}):")
        click.echo(nb[["weight", "mean_net", "p_net_benefit"]].to_string(index=False, float_format=lambda x: sig(x, 4)))
        out["net_benefit"] = nb.to_dict(orient="records")
    if json_path is not None:
        json_path.write_text(to_json(out, indent=2))
        click.echo(f"\nJSON written to {json_path}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
