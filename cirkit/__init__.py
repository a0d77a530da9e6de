"""cirkit: reproducible language-guided image retrieval built from pure, content-addressed stages."""

__version__ = "0.1.0"


def open(store="artifacts"):  # noqa: A001 - cirkit.open(store) is the notebook entry point
    """Open a store for reading in a notebook: ``cirkit.open("artifacts").runs["demo"].metrics_frame()``."""
    from .notebook import open_store

    return open_store(store)
