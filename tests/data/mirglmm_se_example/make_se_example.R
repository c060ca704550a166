# Builds tests/data/mirglmm_se_example/se_example.rda: the miRglmm example (counts_long.csv and samples.csv
# of this folder, copies of ../shared/data/mirglmm_se_example) as an R
# SummarizedExperiment shaped like miRglmm's own `se_example` (sparse dgCMatrix assay `counts`, rowData with
# uniqueSequence and miRNA, colData of sample metadata). Run once with R + SummarizedExperiment:
#   Rscript tests/data/mirglmm_se_example/make_se_example.R tests/data/mirglmm_se_example \
#       tests/data/mirglmm_se_example/se_example.rda
suppressPackageStartupMessages({library(SummarizedExperiment); library(Matrix)})
args <- commandArgs(trailingOnly = TRUE)
long <- read.csv(file.path(args[1], "counts_long.csv"), stringsAsFactors = FALSE)
samples <- read.csv(file.path(args[1], "samples.csv"), stringsAsFactors = FALSE)
key <- unique(long[, c("miRNA", "sequence")])
key <- key[order(key$miRNA, key$sequence), ]
i <- match(paste(long$miRNA, long$sequence), paste(key$miRNA, key$sequence))
j <- match(long$sample, samples$sample)
m <- sparseMatrix(i = i, j = j, x = as.numeric(long$count), dims = c(nrow(key), nrow(samples)),
                  dimnames = list(NULL, samples$sample))
rownames(samples) <- samples$sample
se_example <- SummarizedExperiment(assays = list(counts = m),
  rowData = DataFrame(uniqueSequence = key$sequence, miRNA = key$miRNA),
  colData = DataFrame(samples[, setdiff(names(samples), "sample")]))
save(se_example, file = args[2])
