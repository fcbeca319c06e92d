# Reference values for ketabayes' paired measures (MC, SMCC, SMCR), from metafor::escalc.
#
# Run from the repository root:  Rscript scripts/reference/metafor_escalc_paired.R
# Writes tests/data/metafor_escalc_paired.json, read by tests/test_paired.py (CI has no R).
#
# Inputs:
#  * "morris2008": the treatment-group pre/post summaries of Morris (2008), Organizational Research
#    Methods 11:364-386, as typed in metafor's own test tests/testthat/test_analysis_example_morris2008.r
#    (see https://www.metafor-project.org/doku.php/analyses:morris2008); measurement 1 = post, 2 = pre.
#  * "constructed": CONSTRUCTED numbers (not trial data) covering negative, zero and perfect
#    correlations, n = 3 and unequal SDs.
suppressPackageStartupMessages({library(metafor); library(jsonlite)})

morris <- data.frame(
  m1i  = c(38.5, 26.8, 0.7, 75.9, 36.0),
  m2i  = c(30.6, 23.5, 0.5, 53.4, 35.6),
  sd1i = c(11.6, 4.1, 0.1, 4.4, 4.6),
  sd2i = c(15.0, 3.1, 0.1, 14.5, 4.7),
  ni   = c(20, 50, 9, 10, 14),
  ri   = c(.47, .64, .77, .89, .44))

constructed <- data.frame(
  m1i  = c(1.25, -3.0, 10.0, 0.0, 2.5, 100.0),
  m2i  = c(0.5, 2.0, 10.0, 1.5, -0.75, 90.0),
  sd1i = c(2.0, 1.0, 3.0, 0.5, 1.2, 20.0),
  sd2i = c(3.0, 1.5, 2.0, 0.7, 1.1, 25.0),
  ni   = c(3, 12, 40, 7, 250, 15),
  ri   = c(-0.3, 0.0, 0.5, 1.0, 0.95, -1.0))

one <- function(dat) {
  out <- list(input = as.list(dat))
  for (m in c("MC", "SMCC", "SMCR")) {
    vtypes <- if (m == "MC") "LS" else c("LS", "LS2")
    for (vt in vtypes) {
      e <- escalc(measure = m, m1i = m1i, m2i = m2i, sd1i = sd1i, sd2i = sd2i, ni = ni, ri = ri,
                  data = dat, vtype = vt)
      out[[paste(m, vt, sep = "_")]] <- list(yi = as.numeric(e$yi), vi = as.numeric(e$vi))
    }
  }
  out
}

res <- list(
  metafor_version = as.character(packageVersion("metafor")),
  R_version = paste(R.version$major, R.version$minor, sep = "."),
  note = "escalc(measure, m1i, m2i, sd1i, sd2i, ni, ri, vtype); key MEASURE_VTYPE; LS is metafor's default",
  morris2008 = one(morris),
  constructed = one(constructed))
writeLines(toJSON(res, digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null"),
           "tests/data/metafor_escalc_paired.json")
cat("wrote tests/data/metafor_escalc_paired.json\n")
