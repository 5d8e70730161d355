"""The cohort table: clinical CSV reading, targets (endpoints, labels), clinical encoders, covariates,
patient-level splits (written once, hashed), split import, table checks."""
