#!/usr/bin/env Rscript
# Reference values for ketabayes.inference.frequentist, computed by metafor itself.
#
# Usage (from the repository root; needs R with metafor, metadat and jsonlite, e.g. from Debian's
# r-cran-metafor and r-cran-jsonlite):
#   Rscript scripts/reference/metafor_frequentist.R
# writes tests/data/metafor_frequentist.json. The tests read only that JSON; CI never needs R.
#
# Every iterative estimator is run with a tight control (threshold / tol 1e-12) so that both metafor and
# ketabayes report converged values, not metafor's default early stop (threshold 1e-5).
suppressMessages(library(metafor))
library(jsonlite)

ctrl <- list(threshold = 1e-12, maxiter = 10000, tol = 1e-12)
ci_ctrl <- list(tol = 1e-12, maxiter = 10000)
methods <- c("FE", "DL", "HE", "HS", "SJ", "ML", "REML", "EB", "PM")
tests <- c("z", "t", "knha", "adhoc")

num <- function(x) { x <- as.numeric(x); x[is.na(x)] <- NA; x }

# ---- data sets (all shipped with metadat) -------------------------------------------------------------
d <- list()
bcg <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
d$bcg_rr <- list(yi = bcg$yi, vi = bcg$vi, mods = cbind(ablat = bcg$ablat, year = bcg$year),
                 group = as.character(bcg$alloc))
nor <- escalc(measure = "MD", m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i, sd2i = sd2i, n2i = n2i,
              data = dat.normand1999)
d$normand1999_md <- list(yi = nor$yi, vi = nor$vi, mods = NULL, group = NULL)
egg <- escalc(measure = "OR", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = dat.egger2001)
# year centred at 1990: with the raw year (16 trials, 1984-1999) metafor's own floating-point error in QE
# is ~3e-8 relative (a centred fit agrees with the raw one to 1e-10 in double precision elsewhere),
# which would swamp a 1e-8 comparison; the model is the same (intercept at 1990).
d$egger2001_or <- list(yi = egg$yi, vi = egg$vi, mods = cbind(year1990 = egg$year - 1990), group = NULL)
hack <- dat.hackshaw1998
d$hackshaw1998_or <- list(yi = hack$yi, vi = hack$vi, mods = NULL, group = as.character(hack$design))
pri <- escalc(measure = "PLO", xi = xi, ni = ni, data = dat.pritz1997)
d$pritz1997_plo <- list(yi = pri$yi, vi = pri$vi, mods = NULL, group = NULL)
li <- escalc(measure = "OR", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = dat.li2007)
d$li2007_or <- list(yi = li$yi, vi = li$vi, mods = NULL, group = NULL)
rau <- dat.raudenbush1985
d$raudenbush1985_smd <- list(yi = rau$yi, vi = rau$vi, mods = cbind(weeks = rau$weeks),
                             group = as.character(rau$tester))
mol <- escalc(measure = "ZCOR", ri = ri, ni = ni, data = dat.molloy2014)
d$molloy2014_zcor <- list(yi = mol$yi, vi = mol$vi, mods = cbind(meanage = mol$meanage, quality = mol$quality),
                          group = as.character(mol$design))
bd <- dat.bangertdrowns2004
d$bangertdrowns2004_smd <- list(yi = bd$yi, vi = bd$vi, mods = NULL, group = NULL)
for (n in names(d)) { d[[n]]$yi <- as.numeric(d[[n]]$yi); d[[n]]$vi <- as.numeric(d[[n]]$vi) }

# ---- rma.uni ---------------------------------------------------------------------------------------------
fit_summary <- function(res) {
  out <- list(beta = num(res$beta), se = num(res$se), zval = num(res$zval), pval = num(res$pval),
              ci_lb = num(res$ci.lb), ci_ub = num(res$ci.ub), tau2 = num(res$tau2), se_tau2 = num(res$se.tau2),
              I2 = num(res$I2), H2 = num(res$H2), QE = num(res$QE), QEp = num(res$QEp), QM = num(res$QM),
              QMdf = num(res$QMdf), QMp = num(res$QMp), ddf = num(res$ddf), k = res$k, p = res$p)
  if (res$p == 1 && !(res$method %in% c("FE", "EE", "CE"))) {
    pr <- predict(res)
    out$pi_lb <- num(pr$pi.lb); out$pi_ub <- num(pr$pi.ub)
  }
  if (!(res$method %in% c("FE", "EE", "CE"))) {
    ci <- confint(res, control = ci_ctrl)$random
    out$tau2_ci <- num(ci["tau^2", c("ci.lb", "ci.ub")])
    out$I2_ci <- num(ci["I^2(%)", c("ci.lb", "ci.ub")])
    out$H2_ci <- num(ci["H^2", c("ci.lb", "ci.ub")])
  }
  out
}

uni <- list()
for (n in names(d)) {
  x <- d[[n]]
  for (m in methods) for (tt in tests) {
    res <- suppressWarnings(rma(x$yi, x$vi, method = m, test = tt, control = ctrl))
    uni[[length(uni) + 1]] <- c(list(data = n, mods = FALSE, method = m, test = tt), fit_summary(res))
    if (!is.null(x$mods)) {
      res <- suppressWarnings(rma(x$yi, x$vi, mods = x$mods, method = m, test = tt, control = ctrl))
      uni[[length(uni) + 1]] <- c(list(data = n, mods = TRUE, method = m, test = tt), fit_summary(res))
    }
  }
}
# a 90% level, to check that the level reaches every interval
for (m in c("DL", "REML")) for (tt in c("z", "knha")) {
  res <- rma(d$bcg_rr$yi, d$bcg_rr$vi, method = m, test = tt, level = 90, control = ctrl)
  uni[[length(uni) + 1]] <- c(list(data = "bcg_rr", mods = FALSE, method = m, test = tt, level = 0.9),
                              fit_summary(res))
}

# ---- leave-one-out, influence, small-study tests, trim-and-fill, subgroups -------------------------------
diag_cases <- list()
for (n in c("bcg_rr", "normand1999_md", "egger2001_or", "hackshaw1998_or", "li2007_or")) {
  x <- d[[n]]
  for (m in c("FE", "DL", "REML", "PM")) for (tt in c("z", "knha")) {
    if (m == "FE" && tt == "knha") next
    res <- rma(x$yi, x$vi, method = m, test = tt, control = ctrl)
    l1 <- leave1out(res)
    inf <- influence(res)
    rt_rma <- regtest(res)
    rt_lm <- regtest(res, model = "lm")
    rt_vi <- regtest(res, predictor = "vi")
    case <- list(data = n, method = m, test = tt,
      # leave1out() names the statistic tval under t tests and has no tau2 / I2 / H2 for FE models
      leave1out = lapply(list(estimate = l1$estimate, se = l1$se, zval = if (tt == "z") l1$zval else l1$tval,
                              pval = l1$pval,
                              ci_lb = l1$ci.lb, ci_ub = l1$ci.ub, Q = l1$Q, Qp = l1$Qp, tau2 = l1$tau2,
                              I2 = l1$I2, H2 = l1$H2), function(x) if (is.null(x)) NULL else num(x)),
      influence = lapply(list(rstudent = inf$inf$rstudent, dffits = inf$inf$dffits, cook_d = inf$inf$cook.d,
                              cov_r = inf$inf$cov.r, tau2_del = inf$inf$tau2.del, QE_del = inf$inf$QE.del,
                              hat = inf$inf$hat, weight = inf$inf$weight, dfbetas = inf$dfbs$intrcpt), num),
      inf_flag = inf$is.infl,
      regtest = list(zval = num(rt_rma$zval), pval = num(rt_rma$pval), ddf = num(rt_rma$ddf),
                     est = num(rt_rma$est), ci_lb = num(rt_rma$ci.lb), ci_ub = num(rt_rma$ci.ub)),
      regtest_lm = list(zval = num(rt_lm$zval), pval = num(rt_lm$pval), ddf = num(rt_lm$ddf),
                        est = num(rt_lm$est), ci_lb = num(rt_lm$ci.lb), ci_ub = num(rt_lm$ci.ub)),
      regtest_vi = list(zval = num(rt_vi$zval), pval = num(rt_vi$pval), est = num(rt_vi$est)))
    if (tt == "z") {
      rk <- ranktest(res)
      case$ranktest <- list(tau = num(rk$tau), pval = num(rk$pval))
      for (est in c("L0", "R0")) {
        tf <- trimfill(res, estimator = est, control = ctrl)
        case[[paste0("trimfill_", est)]] <- list(k0 = tf$k0, se_k0 = num(tf$se.k0), p_k0 = num(tf$p.k0), side = tf$side,
          beta = num(tf$beta), se = num(tf$se), ci_lb = num(tf$ci.lb), ci_ub = num(tf$ci.ub),
          tau2 = num(tf$tau2), QE = num(tf$QE), yi = num(tf$yi), vi = num(tf$vi), fill = tf$fill)
      }
    }
    if (!is.null(x$group)) {
      g <- x$group
      lev <- sort(unique(g))
      sub <- lapply(lev, function(l) {
        r <- rma(x$yi, x$vi, subset = g == l, method = m, test = tt, control = ctrl)
        list(group = l, k = r$k, estimate = num(r$beta), se = num(r$se), ci_lb = num(r$ci.lb),
             ci_ub = num(r$ci.ub), tau2 = num(r$tau2), QE = num(r$QE))
      })
      est <- sapply(sub, function(s) s$estimate); se <- sapply(sub, function(s) s$se)
      qb <- rma(est, sei = se, method = "FE")
      case$subgroup <- list(groups = sub, Q_between = num(qb$QE), df = length(lev) - 1, pval = num(qb$QEp))
    }
    diag_cases[[length(diag_cases) + 1]] <- case
  }
}

# ---- Mantel-Haenszel and Peto -------------------------------------------------------------------------
bin_data <- list(
  bcg = with(dat.bcg, list(ai = tpos, bi = tneg, ci = cpos, di = cneg)),
  egger2001 = with(dat.egger2001, list(ai = ai, bi = n1i - ai, ci = ci, di = n2i - ci)),
  li2007 = with(dat.li2007, list(ai = ai, bi = n1i - ai, ci = ci, di = n2i - ci)),
  nielweise2007 = with(dat.nielweise2007, list(ai = ai, bi = n1i - ai, ci = ci, di = n2i - ci)),
  # two constructed tables appended to nielweise2007: a double-zero study and a study with all events,
  # to exercise metafor's drop00 / zero-cell rules (labelled: these rows are not trial data)
  zeros_constructed = with(dat.nielweise2007, list(ai = c(ai, 0, 5), bi = c(n1i - ai, 20, 0),
                                                   ci = c(ci, 0, 3), di = c(n2i - ci, 25, 4))))
binary <- list()
for (n in names(bin_data)) {
  b <- bin_data[[n]]
  for (ms in c("OR", "RR", "RD")) {
    r <- rma.mh(ai = b$ai, bi = b$bi, ci = b$ci, di = b$di, measure = ms)
    binary[[length(binary) + 1]] <- list(data = n, method = "MH", measure = ms, counts = b,
      beta = num(r$beta), se = num(r$se), zval = num(r$zval), pval = num(r$pval), ci_lb = num(r$ci.lb),
      ci_ub = num(r$ci.ub), QE = num(r$QE), QEp = num(r$QEp), I2 = num(r$I2), H2 = num(r$H2), k = r$k,
      k_yi = r$k.yi, CO = num(r$CO), COp = num(r$COp), MH = num(r$MH), MHp = num(r$MHp), TA = num(r$TA),
      TAp = num(r$TAp))
  }
  r <- rma.peto(ai = b$ai, bi = b$bi, ci = b$ci, di = b$di)
  binary[[length(binary) + 1]] <- list(data = n, method = "PETO", measure = "OR", counts = b,
    beta = num(r$beta), se = num(r$se), zval = num(r$zval), pval = num(r$pval), ci_lb = num(r$ci.lb),
    ci_ub = num(r$ci.ub), QE = num(r$QE), QEp = num(r$QEp), I2 = num(r$I2), H2 = num(r$H2), k = r$k,
    k_yi = r$k.yi)
}

data_out <- lapply(d, function(x) list(yi = x$yi, vi = x$vi,
  mods = if (is.null(x$mods)) NULL else as.data.frame(x$mods), group = x$group))
out <- list(
  generator = "scripts/reference/metafor_frequentist.R",
  metafor_version = as.character(packageVersion("metafor")),
  metadat_version = as.character(packageVersion("metadat")),
  R_version = paste(R.version$major, R.version$minor, sep = "."),
  control = ctrl, data = data_out, rma_uni = uni, diagnostics = diag_cases, binary = binary)
dir.create("tests/data", showWarnings = FALSE, recursive = TRUE)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, na = "null", null = "null", pretty = FALSE),
           "tests/data/metafor_frequentist.json")
cat("wrote tests/data/metafor_frequentist.json:", length(uni), "rma.uni fits,", length(diag_cases),
    "diagnostic cases,", length(binary), "MH/Peto fits\n")
