"""Annotations of benchmark queries that methods train on: CIR-CoT's structured chains of thought."""
