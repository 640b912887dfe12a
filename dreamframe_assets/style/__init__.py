"""Style Immobilization: a per-movie style learned from reference images (offline: fitted
look parameters; textual inversion: one learned token per text encoder)."""
