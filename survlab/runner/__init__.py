"""Layer 8, runner: builds a job (runner/build.py: data module, net, task, trainer), runs it (train), applies
a trained run to a cohort (evaluate, external), fits classical estimators (estimators/), chains stages
(pipelines/), and holds the Hydra / Lightning callbacks."""
