"""The story: three-level story expansion from a theme (offline writer, LLM writer) and the
paper authors' story files (import, export)."""
