"""OSrCIR (CVPR 2025), in one place: its composition (``pipeline.py``, the ``osrcir`` pipeline) and its prompt
(``prompts/``, packaged as ``osrcir/<name>``). Its stages are the shared ones (``methods/common.py``)."""
