"""Keyframes: every frame drawn in its movie's style (offline renderer, diffusion)."""
