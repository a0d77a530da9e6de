"""Encoders: cirkit's own Flax CLIP, reading Hugging Face ``CLIPModel`` checkpoints without torch."""
