"""Generated cohorts with an oracle (synthetic survival / classification / sites, PathGen, PET/CT), the public
cohort shipped with survlab (GSE7390) and example batches for docstrings."""
