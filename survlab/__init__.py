"""survlab — a PyTorch Lightning + Hydra platform for multimodal cancer outcome models."""

__version__ = "0.1.0"
