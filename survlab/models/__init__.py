"""Layer 4, models: plain nn.Modules, one file per architecture, built from the shared `blocks`; no I/O."""
