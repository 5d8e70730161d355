"""Layer 5, tasks: LightningModules (outcome objectives, diffusion, segmentation): losses, metrics and
optimisation wiring around a network."""
