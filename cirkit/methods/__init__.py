"""Retrieval methods as short compositions of cached stages."""
