"""Built-in pipelines; importing this package registers them."""

from . import baselines, demo, methods, synthetic, trained, training_data  # noqa: F401
