"""QA pairs: the writers (offline, LLM), the oracle that looks each answer up again, and the
quality gates."""
