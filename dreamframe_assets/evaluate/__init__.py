"""Evaluation: answerers (random, blind, pixel, VLM), metrics (accuracy, evidence retrieval,
style consistency, diversity) and charts."""
