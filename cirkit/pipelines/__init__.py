"""Built-in pipelines; importing this package registers them."""

from . import baselines, demo, methods, synthetic, training_data  # noqa: F401
