#!/usr/bin/env Rscript
# The script that made the lme4 / aggregated-method references in sim_monocyte_scale/ (lme4_glmer_nb.csv,
# lme4_glmer_poisson.csv with --poisson, lme4_aggregated.csv with --aggregated). Copied unchanged (apart from
# these header lines) from ../shared/anchors/fit_glmm.R; run there on R 4.2.2 with Debian's r-cran-lme4,
# r-cran-mass, r-bioc-deseq2, r-bioc-edger, r-bioc-limma:
#   Rscript fit_glmm.R counts_long.csv samples.csv lme4 ...   (OUT_PREFIX lme4; --poisson, --aggregated)
# See README.md in this folder for which test reads which file.
# Reference fits with lme4 for isomiR-level counts (miRglmm's model and control settings).
# usage: Rscript fit_glmm.R COUNTS_LONG.csv SAMPLES.csv OUT_PREFIX [--filter] [--poisson] [--aggregated] [--mirnas N]
# COUNTS_LONG: miRNA,sequence,sample,count ; SAMPLES: sample,group[,lab...]; group's first level (sorted) is the reference.
suppressPackageStartupMessages({library(lme4)})
suppressMessages <- base::suppressMessages
args <- commandArgs(trailingOnly = TRUE)
counts <- read.csv(args[1], stringsAsFactors = FALSE)
samples <- read.csv(args[2], stringsAsFactors = FALSE)
out <- args[3]
do_filter <- "--filter" %in% args; do_pois <- "--poisson" %in% args; do_agg <- "--aggregated" %in% args
nmax <- if ("--mirnas" %in% args) as.integer(args[which(args == "--mirnas") + 1]) else Inf
covars <- setdiff(names(samples), c("sample", "group"))
covars <- covars[covars %in% c("lab", "batch")]
samples$group <- factor(samples$group); rownames(samples) <- samples$sample
# library totals over ALL isomiRs of all miRNAs (each distinct sequence counted once), before filtering
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
  keep_mi <- names(which(cpm(mi) > 5))
  counts <- counts[counts$miRNA %in% keep_mi, ]
  counts$key <- paste(counts$miRNA, counts$sequence)
  keep_iso <- names(which(cpm(counts) > -1))
  counts <- counts[counts$key %in% keep_iso, ]
  n_iso <- tapply(counts$sequence, counts$miRNA, function(s) length(unique(s)))
  counts <- counts[counts$miRNA %in% names(which(n_iso >= 2)), ]
}
mirnas <- sort(unique(counts$miRNA)); mirnas <- head(mirnas, nmax)
rhs_fixed <- paste(c("group", covars), collapse = " + ")
f_full <- as.formula(paste("count ~", rhs_fixed, "+ offset(log(total_counts/1e4)) + (1 + group | sequence) + (1 | sample)"))
f_red <- as.formula(paste("count ~", rhs_fixed, "+ offset(log(total_counts/1e4)) + (1 | sequence) + (1 | sample)"))
ctrl <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-3, optCtrl = list(maxfun = 2e5))
coef_name <- paste0("group", levels(samples$group)[2])
rows <- list()
for (m in mirnas) {
  d <- counts[counts$miRNA == m, c("sequence", "sample", "count")]
  grid <- expand.grid(sequence = unique(d$sequence), sample = samples$sample, stringsAsFactors = FALSE)
  d <- merge(grid, d, all.x = TRUE); d$count[is.na(d$count)] <- 0
  d <- merge(d, samples, by = "sample")
  fitone <- function(f, fam) {
    w <- character(0)
    t0 <- proc.time()[["elapsed"]]
    fit <- tryCatch(withCallingHandlers(
      if (fam == "nb") glmer.nb(f, data = d, control = ctrl) else glmer(f, data = d, family = poisson, control = ctrl),
      warning = function(x) { w <<- c(w, conditionMessage(x)); invokeRestart("muffleWarning") }),
      error = function(e) { w <<- c(w, paste("ERROR", conditionMessage(e))); NULL })
    list(fit = fit, sec = proc.time()[["elapsed"]] - t0, warn = paste(unique(w), collapse = " | "))
  }
  fam <- if (do_pois) "poisson" else "nb"
  full <- fitone(f_full, fam); red <- fitone(f_red, fam)
  r <- data.frame(miRNA = m, n_isomirs = length(unique(d$sequence)), n_samples = nrow(samples),
                  logFC = NA, SE = NA, ci_low = NA, ci_high = NA, wald_p = NA, theta = NA, sd_slope = NA,
                  sd_isomir = NA, sd_sample = NA, loglik_full = NA, loglik_reduced = NA, lrt_stat = NA,
                  lrt_df = NA, lrt_p = NA, singular = NA, warnings_full = full$warn, warnings_reduced = red$warn,
                  sec_full = full$sec, sec_reduced = red$sec)
  if (!is.null(full$fit)) {
    cf <- summary(full$fit)$coefficients
    if (coef_name %in% rownames(cf)) {
      r$logFC <- cf[coef_name, 1]; r$SE <- cf[coef_name, 2]; r$wald_p <- cf[coef_name, 4]
      r$ci_low <- r$logFC - 1.959964 * r$SE; r$ci_high <- r$logFC + 1.959964 * r$SE
    }
    vc <- as.data.frame(VarCorr(full$fit))
    r$sd_slope <- vc$sdcor[vc$grp == "sequence" & vc$var1 == coef_name & is.na(vc$var2)]
    r$sd_isomir <- vc$sdcor[vc$grp == "sequence" & vc$var1 == "(Intercept)" & is.na(vc$var2)]
    r$sd_sample <- vc$sdcor[vc$grp == "sample"]
    if (fam == "nb") r$theta <- getME(full$fit, "glmer.nb.theta")
    r$loglik_full <- as.numeric(logLik(full$fit)); r$singular <- isSingular(full$fit)
  }
  if (!is.null(full$fit) && !is.null(red$fit)) {
    r$loglik_reduced <- as.numeric(logLik(red$fit))
    a <- suppressMessages(anova(full$fit, red$fit))
    r$lrt_stat <- a$Chisq[2]; r$lrt_df <- a$Df[2]; r$lrt_p <- a$`Pr(>Chisq)`[2]
  }
  rows[[m]] <- r
  cat(sprintf("%s n_iso=%d logFC=%.3f full=%.1fs red=%.1fs\n", m, r$n_isomirs, r$logFC, r$sec_full, r$sec_reduced))
}
res <- do.call(rbind, rows)
write.csv(res, paste0(out, if (do_pois) "_glmer_poisson.csv" else "_glmer_nb.csv"), row.names = FALSE)
cat(sprintf("TOTAL miRNAs=%d full=%.1fs reduced=%.1fs\n", nrow(res), sum(res$sec_full), sum(res$sec_reduced)))
if (do_agg) {
  suppressPackageStartupMessages({library(MASS); library(DESeq2); library(edgeR); library(limma)})
  agg <- xtabs(count ~ miRNA + sample, counts[counts$miRNA %in% mirnas, ])
  agg <- as.matrix(agg[, samples$sample, drop = FALSE])
  agg <- matrix(as.integer(round(agg)), nrow(agg), dimnames = dimnames(agg))
  lib <- samples$total_counts
  design <- model.matrix(as.formula(paste("~", rhs_fixed)), samples)
  t0 <- proc.time()[["elapsed"]]
  nb <- t(sapply(rownames(agg), function(m) {
    fit <- tryCatch(suppressWarnings(glm.nb(agg[m, ] ~ . - 1 + offset(log(lib / 1e4)), data = as.data.frame(design))), error = function(e) NULL)
    if (is.null(fit)) return(c(NA, NA, NA)); s <- summary(fit)$coefficients; s[coef_name, c(1, 2, 4)] }))
  t_nb <- proc.time()[["elapsed"]] - t0
  t0 <- proc.time()[["elapsed"]]
  dds <- DESeqDataSetFromMatrix(agg, samples[, c("sample", "group", covars), drop = FALSE], as.formula(paste("~", rhs_fixed)))
  dds <- suppressMessages(DESeq(dds, quiet = TRUE)); dr <- results(dds, contrast = c("group", levels(samples$group)[2], levels(samples$group)[1]))
  t_de <- proc.time()[["elapsed"]] - t0
  t0 <- proc.time()[["elapsed"]]
  y <- DGEList(agg, lib.size = lib); y <- calcNormFactors(y); y <- estimateDisp(y, design)
  qf <- glmQLFTest(glmQLFit(y, design), coef = coef_name); et <- topTags(qf, n = Inf, sort.by = "none")$table
  t_er <- proc.time()[["elapsed"]] - t0
  t0 <- proc.time()[["elapsed"]]
  v <- voom(y, design); lf <- eBayes(lmFit(v, design)); lt <- topTable(lf, coef = coef_name, n = Inf, sort.by = "none", confint = TRUE)
  t_li <- proc.time()[["elapsed"]] - t0
  l2 <- log(2)
  agg_res <- data.frame(miRNA = rownames(agg),
    nbglm_logFC = nb[, 1], nbglm_SE = nb[, 2], nbglm_p = nb[, 3],
    deseq2_logFC = dr$log2FoldChange * l2, deseq2_SE = dr$lfcSE * l2, deseq2_p = dr$pvalue,
    edger_logFC = et$logFC * l2, edger_p = et$PValue,
    limma_logFC = lt$logFC * l2, limma_ci_low = lt$CI.L * l2, limma_ci_high = lt$CI.R * l2, limma_p = lt$P.Value)
  write.csv(agg_res, paste0(out, "_aggregated.csv"), row.names = FALSE)
  cat(sprintf("AGGREGATED seconds: nbglm=%.1f deseq2=%.1f edger=%.1f limma=%.1f\n", t_nb, t_de, t_er, t_li))
}
