"""Layer 2, metrics: pure numbers (numpy / torch, no files): concordance, survival (Uno, td-AUC, Brier, IBS),
classification, Kaplan-Meier / log-rank, conformal sets, generation, cross-validation statistics, pN stage."""
