"""LightningModules: losses, metrics and optimisation wiring around a network."""
