"""cirkit's causal language model (Llama and Qwen2 families) in JAX: config, weights, forward, generation, LoRA."""
