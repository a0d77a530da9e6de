"""ImageScope (WWW 2025), in one place: its stages (``stages.py``: descriptions, propositions, re-ranking;
``evaluation.py``: stage 3's stitched pairs and rounds), its composition (``pipeline.py``, the ``imagescope``
pipeline) and its prompts (``prompts/``, packaged as ``imagescope/<name>``)."""

from .evaluation import *  # noqa: F401,F403
from .stages import *  # noqa: F401,F403
