# Reference values for ketabayes' multivariate normal model (multi-arm trials, several time points),
# from metafor::rma.mv with the same known within-trial covariance and the same random-effects structure.
#
# Run from the repository root:  Rscript scripts/reference/metafor_multiarm.R
# Writes tests/data/metafor_multiarm.json, read by tests/test_exact_multivariate.py (CI has no R).
#
# Data (REAL, from the metadat package):
#  * "senn2013": dat.senn2013 (HbA1c change, glucose-lowering drugs), the 19 trials with a placebo arm (20 contrasts);
#    Willms (1999) has three arms (metformin, acarbose, placebo). Contrasts are arm - placebo mean
#    differences; Var = sd_j^2/n_j + sd_0^2/n_0, Cov(j, k) = sd_0^2/n_0 (shared placebo arm).
#  * "franchini2012": dat.franchini2012 (UPDRS change, dopamine agonists), the 3 trials with a placebo arm;
#    Guttman (1997) has three arms (pramipexole, bromocriptine, placebo).
#  * "ishak2007": dat.ishak2007 (deep-brain stimulation, UPDRS change at 4 time windows); the within-study
#    correlation of estimates across time is NOT reported: rho_time = 0.5 is an ASSUMPTION (as in the
#    metafor example that uses these data), Cov(y_it, y_is) = rho_time * sqrt(v_it v_is).
# Random effects: struct = "CS" with rho fixed: Var(delta_ij) = tau^2, Cov(delta_ij, delta_ik) = rho tau^2
# (rho = 0.5 for arms sharing a control: Higgins & Whitehead 1996; Cochrane Handbook 11.4.3).
suppressPackageStartupMessages({library(metafor); library(metadat); library(jsonlite)})

contrasts_of <- function(study, arm, m, sd, n, control) {
  out <- NULL; blocks <- list()
  for (s in unique(study)) {
    i <- which(study == s); c0 <- i[arm[i] == control]; tr <- setdiff(i, c0)
    vc <- sd[c0]^2 / n[c0]
    out <- rbind(out, data.frame(study = s, arm = arm[tr], yi = m[tr] - m[c0], vi = sd[tr]^2 / n[tr] + vc))
    B <- matrix(vc, length(tr), length(tr)); diag(B) <- sd[tr]^2 / n[tr] + vc
    blocks[[length(blocks) + 1]] <- B
  }
  list(dat = out, V = bldiag(blocks))
}

fits <- function(dat, V, form, random, rho, taus) {
  res <- list()
  for (meth in c("REML", "ML")) {
    f <- rma.mv(form, V, random = random, struct = "CS", rho = rho, data = dat, method = meth)
    res[[meth]] <- list(beta = as.vector(f$beta), se = as.vector(f$se), tau2 = f$tau2, logLik = as.numeric(logLik(f)))
  }
  res$fixed_tau <- lapply(taus, function(t) {
    f <- rma.mv(form, V, random = random, struct = "CS", rho = rho, tau2 = t^2, data = dat)
    list(tau = t, beta = as.vector(f$beta), se = as.vector(f$se),
         loglik_ml = as.numeric(logLik(update(f, method = "ML"))))
  })
  res
}

out <- list(metafor_version = as.character(packageVersion("metafor")))

d <- dat.senn2013
d <- d[d$study %in% unique(d$study[d$treatment == "placebo"]), ]
arms <- lapply(split(d, factor(d$study, levels = unique(d$study))), identity)
ct <- contrasts_of(d$study, as.character(d$treatment), d$mi, d$sdi, d$ni, "placebo")
out$senn2013 <- list(arms = d[, c("study", "treatment", "mi", "sdi", "ni")], contrasts = ct$dat, V = ct$V,
                     fits = fits(ct$dat, ct$V, yi ~ 1, ~ factor(arm) | study, 0.5, c(0.1, 0.3, 1.0)))

f <- dat.franchini2012
long <- NULL
for (r in seq_len(nrow(f))) for (j in 1:3) {
  tr <- f[[paste0("Treatment", j)]][r]
  if (!is.na(tr)) long <- rbind(long, data.frame(study = f$Study[r], treatment = as.character(tr),
    mi = f[[paste0("y", j)]][r], sdi = f[[paste0("sd", j)]][r], ni = f[[paste0("n", j)]][r]))
}
long <- long[long$study %in% unique(long$study[long$treatment == "Placebo"]), ]
ct <- contrasts_of(long$study, long$treatment, long$mi, long$sdi, long$ni, "Placebo")
out$franchini2012 <- list(arms = long, contrasts = ct$dat, V = ct$V,
                          fits = fits(ct$dat, ct$V, yi ~ 1, ~ factor(arm) | study, 0.5, c(0.5, 2.0)))

ish <- dat.ishak2007
lg <- NULL
for (r in seq_len(nrow(ish))) for (t in 1:4) {
  y <- ish[[paste0("y", t, "i")]][r]
  if (!is.na(y)) lg <- rbind(lg, data.frame(study = ish$study[r], time = t, yi = y, vi = ish[[paste0("v", t, "i")]][r]))
}
rho_time <- 0.5
V <- bldiag(lapply(split(lg, factor(lg$study, levels = unique(lg$study))), function(s) {
  S <- rho_time * sqrt(outer(s$vi, s$vi)); diag(S) <- s$vi; S }))
out$ishak2007 <- list(long = lg, rho_time = rho_time, V = V, rho_between = 0.7,
                      fits = fits(lg, V, yi ~ 0 + factor(time), ~ factor(time) | study, 0.7, c(2.0, 5.0)))

writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = FALSE), "tests/data/metafor_multiarm.json")
