"""Training cirkit's own small CLIP (the embedded default: no weights can be downloaded)."""
