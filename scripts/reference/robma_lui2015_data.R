# Lui (2015) data as shipped with the R package RoBMA (data/Lui2015.RData; identical in RoBMA 3.2.0 and 3.6.1).
# Reference data only: R is never a dependency of ketabayes. Usage, from a checkout of RoBMA's sources:
#   Rscript scripts/reference/robma_lui2015_data.R path/to/RoBMA/data/Lui2015.RData
# prints the r, n and study columns as JSON (copied into tests/reference/robma_lui2015.json, "data").
args <- commandArgs(trailingOnly = TRUE)
load(args[1])
cat(jsonlite::toJSON(list(r = Lui2015$r, n = Lui2015$n, study = Lui2015$study), digits = NA, pretty = TRUE), "\n")
