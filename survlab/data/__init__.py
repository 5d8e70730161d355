"""Cohort tables, modality readers, splits, datasets, collate, the LightningDataModule, synthetic cohorts."""
