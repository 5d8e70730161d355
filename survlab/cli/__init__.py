"""Layer 9, the command line: argv parsing only. `survlab <command>` (main.py) dispatches to one module per
command; each calls one function of the layer that does the work."""
