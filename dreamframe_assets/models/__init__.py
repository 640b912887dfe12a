"""Models: clients and loaders (OpenAI-compatible and transformers chat, SD / SDXL pipelines,
CLIP, vision-language models, sentence embeddings) and the one device rule they share."""
