"""Layer 3, data: cohort tables, targets, splits (cohort/), modality readers and stores (modalities/),
generated and public cohorts (sources/), the fold's fitted preprocessing, datasets, batches, samplers and the
LightningDataModule that orchestrates them."""
