#!/usr/bin/env Rscript
# glmmTMB fits of miRglmm's model per miRNA, timed: the R peer that bench_real.py compares against.
# usage: Rscript fit_glmmtmb.R COUNTS_LONG.csv SAMPLES.csv OUT_CSV [--filter] [--mirnas N]
# Same data preparation as /work/shared/anchors/fit_glmm.R (library totals over all distinct sequences before
# filtering, miRglmm's filters, zeros filled in); model nbinom2,
#   full:    count ~ group + offset(log(total_counts/1e4)) + (1 + group | sequence) + (1 | sample)
#   reduced: count ~ group + offset(log(total_counts/1e4)) + (1 | sequence) + (1 | sample)
# and the LRT of the slope (2 df). Writes one row per miRNA with the elapsed seconds of each fit.
suppressPackageStartupMessages({library(glmmTMB)})
args <- commandArgs(trailingOnly = TRUE)
counts <- read.csv(args[1], stringsAsFactors = FALSE)
samples <- read.csv(args[2], stringsAsFactors = FALSE, colClasses = "character")
out <- args[3]
do_filter <- "--filter" %in% args
nmax <- if ("--mirnas" %in% args) as.integer(args[which(args == "--mirnas") + 1]) else Inf
samples$group <- factor(samples$group); rownames(samples) <- samples$sample
uniq <- counts[!duplicated(counts[, c("sequence", "sample")]), ]
tot <- tapply(uniq$count, uniq$sample, sum)
samples$total_counts <- as.numeric(tot[samples$sample])
if (do_filter) {
  cpm <- function(df) {  # log median CPM (natural log), zeros included
    w <- xtabs(count ~ key + sample, df)
    w <- sweep(as.matrix(w[, samples$sample, drop = FALSE]), 2, samples$total_counts / 1e6, "/")
    log(apply(w, 1, median))
  }
  mi <- aggregate(count ~ miRNA + sample, counts, sum); mi$key <- mi$miRNA
  counts <- counts[counts$miRNA %in% names(which(cpm(mi) > 5)), ]
  counts$key <- paste(counts$miRNA, counts$sequence)
  counts <- counts[counts$key %in% names(which(cpm(counts) > -1)), ]
  n_iso <- tapply(counts$sequence, counts$miRNA, function(s) length(unique(s)))
  counts <- counts[counts$miRNA %in% names(which(n_iso >= 2)), ]
}
mirnas <- head(sort(unique(counts$miRNA)), nmax)
f_full <- count ~ group + offset(log(total_counts / 1e4)) + (1 + group | sequence) + (1 | sample)
f_red <- count ~ group + offset(log(total_counts / 1e4)) + (1 | sequence) + (1 | sample)
coef_name <- paste0("group", levels(samples$group)[2])
fit_timed <- function(f, d) {
  w <- character(0)
  t0 <- proc.time()[["elapsed"]]
  fit <- tryCatch(withCallingHandlers(glmmTMB(f, data = d, family = nbinom2),
    warning = function(x) { w <<- c(w, conditionMessage(x)); invokeRestart("muffleWarning") }),
    error = function(e) { w <<- c(w, paste("ERROR", conditionMessage(e))); NULL })
  list(fit = fit, sec = proc.time()[["elapsed"]] - t0, warn = paste(unique(w), collapse = " | "))
}
rows <- list()
for (m in mirnas) {
  d <- counts[counts$miRNA == m, c("sequence", "sample", "count")]
  grid <- expand.grid(sequence = unique(d$sequence), sample = samples$sample, stringsAsFactors = FALSE)
  d <- merge(grid, d, all.x = TRUE); d$count[is.na(d$count)] <- 0
  d <- merge(d, samples, by = "sample")
  full <- fit_timed(f_full, d); red <- fit_timed(f_red, d)
  r <- data.frame(miRNA = m, n_isomirs = length(unique(d$sequence)), logFC = NA, SE = NA, theta = NA,
                  loglik_full = NA, loglik_reduced = NA, lrt_stat = NA, warnings_full = full$warn,
                  warnings_reduced = red$warn, sec_full = full$sec, sec_reduced = red$sec)
  if (!is.null(full$fit)) {
    cf <- summary(full$fit)$coefficients$cond
    if (coef_name %in% rownames(cf)) { r$logFC <- cf[coef_name, 1]; r$SE <- cf[coef_name, 2] }
    r$theta <- sigma(full$fit); r$loglik_full <- as.numeric(logLik(full$fit))
  }
  if (!is.null(red$fit)) r$loglik_reduced <- as.numeric(logLik(red$fit))
  r$lrt_stat <- 2 * (r$loglik_full - r$loglik_reduced)
  rows[[m]] <- r
  cat(sprintf("%s n_iso=%d logFC=%.3f full=%.1fs red=%.1fs\n", m, r$n_isomirs, r$logFC, r$sec_full, r$sec_reduced))
}
res <- do.call(rbind, rows)
write.csv(res, out, row.names = FALSE)
cat(sprintf("TOTAL miRNAs=%d full=%.1fs reduced=%.1fs glmmTMB=%s\n", nrow(res), sum(res$sec_full),
            sum(res$sec_reduced), as.character(packageVersion("glmmTMB"))))
