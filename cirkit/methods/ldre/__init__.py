"""LDRE (SIGIR 2024) and SEIZE (ACM MM 2024), in one place: N sampled captions of the reference x M LLM rewrites
of each, embedded and ensembled into one query, then CLIP retrieval. Stages in ``stages.py`` (the ensemble) and
``published.py`` (the importer of the authors' published caption/rewrite files), the composition in
``pipeline.py`` (the ``ldre`` pipeline), prompts in ``prompts/`` (packaged as ``ldre/<name>``)."""

from .published import *  # noqa: F401,F403
from .stages import *  # noqa: F401,F403
