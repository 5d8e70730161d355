"""`python -m survlab <command> ...` = `survlab <command> ...` (see survlab.cli)."""

from survlab.cli import main

raise SystemExit(main())
