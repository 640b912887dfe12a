"""DreamFrame: video instruction-tuning data (movies, keyframes, QA) from one-line themes."""

__version__ = "0.1.0"
