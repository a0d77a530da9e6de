"""Built-in pipelines; importing this package registers them."""

from . import baselines, demo, methods, synthetic, trained  # noqa: F401
