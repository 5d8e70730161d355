"""`python -m survlab <command> ...` = `survlab <command> ...` (see survlab/cli/main.py)."""

from survlab.cli.main import main

raise SystemExit(main())
