"""`python -m survlab.run ...`: the same command as `survlab train ...` (survlab/cli/train.py)."""

from survlab.cli.train import main

if __name__ == "__main__":
    main()
