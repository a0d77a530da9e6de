"""CIR-LVLM (arXiv 2412.11087): a vision-language model as a user-intent-aware composed-query encoder."""
