"""The pipeline: backends by name, the five steps (items, cache, writes) and the code each
stage runs. Dagster assets and DVC stages both call the steps."""
