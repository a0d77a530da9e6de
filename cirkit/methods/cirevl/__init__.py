"""CIReVL (ICLR 2024), in one place: its composition (``pipeline.py``, the ``cirevl`` pipeline) and its prompts
(``prompts/``, packaged as ``cirevl/<name>``). Its stages are the shared ones (``methods/common.py``)."""
