"""Helpers of the test suite (not part of the survlab package): tiny CLI runs, in-process jobs, synthetic tables."""
