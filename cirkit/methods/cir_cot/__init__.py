"""CIR-CoT (arXiv 2510.08003): reason about the edit in a structured chain of thought, then embed the intent
in a dedicated embedding token."""
