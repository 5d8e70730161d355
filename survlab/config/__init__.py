"""Layer 7, configuration: checks of a composed config that a schema cannot express (one-line errors before
torch loads), the config search path (package, SURVLAB_CONFIG_PATH, ./conf, --config-dir), cohort configs as YAML."""
