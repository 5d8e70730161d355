"""The YAML config groups Hydra composes (package data; no code)."""
