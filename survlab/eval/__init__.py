"""Metrics, plots and sweep summaries."""
