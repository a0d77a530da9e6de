"""cirkit: reproducible language-guided image retrieval built from pure, content-addressed stages."""

__version__ = "0.1.0"
