"""Built-in pipelines; importing this package registers them."""

from . import demo, methods, synthetic  # noqa: F401
