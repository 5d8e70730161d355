"""Layer 6, report: every file a run writes (predictions, metrics, protocol card, KM, attention, subgroups,
segmentation, sweep summaries), computed from prediction rows."""
