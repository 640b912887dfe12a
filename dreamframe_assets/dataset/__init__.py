"""The built dataset: comparing versions (diff) and exporting it for training."""
