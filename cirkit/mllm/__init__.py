"""The parts CIR-LVLM and CIR-CoT share: a frozen vision tower, a query connector, a prompt pool, pooling, and
the assembly of [visual prompt, task prompt, instance prompt, text] into cirkit's causal LM."""
