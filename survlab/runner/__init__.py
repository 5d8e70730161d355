"""Run orchestration: building a job (trainer, callbacks, loggers), checking its config, writing its reports.

Imports run one way: data -> models -> tasks -> eval -> runner (and the `survlab.run` / `survlab.cli` entry points).
"""
