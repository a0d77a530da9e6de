"""Built-in pipelines; importing this package registers them."""

from . import synthetic  # noqa: F401
