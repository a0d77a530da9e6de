"""Built-in pipelines; importing this package registers them."""

from . import demo, synthetic  # noqa: F401
