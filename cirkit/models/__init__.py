"""Model roles (captioner, reasoner, verifier, evaluator, multimodal reasoner) and the backends behind them."""
