"""cirkit's causal LM on the real SmolLM2-135M-Instruct weights against transformers + torch."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="the reference is transformers + torch (the test extra)")

import torch  # noqa: E402
from conftest import free_heap  # noqa: E402

from cirkit.lm.generate import greedy_generate, pad_left  # noqa: E402
from cirkit.lm.weights import load_lm  # noqa: E402

QUESTIONS = ["What colour is the sky?", "Describe a red square on a blue background."]


def test_real_smollm2_logits_and_greedy_generations_match_transformers(smollm2_folder):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_folder)
    prompts = [list(tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                                  tokenize=True, return_dict=True)["input_ids"]) for q in QUESTIONS]
    assert len(prompts[0]) != len(prompts[1])  # so the batch is really left-padded
    lm = load_lm(smollm2_folder)
    generated, logits = greedy_generate(lm.params, lm.config, prompts, 6, return_logits=True)
    config = lm.config
    del lm  # one model in memory at a time: the reference loads only after cirkit's weights are freed
    free_heap()  # ... and given back, so that torch's copy does not land on top of them
    reference = AutoModelForCausalLM.from_pretrained(smollm2_folder, dtype=torch.float32).eval()

    tokens, mask = pad_left(prompts, config.pad_token_id, bucket=1)
    with torch.no_grad():
        ref = reference.generate(torch.tensor(tokens, dtype=torch.long), attention_mask=torch.tensor(mask),
                                 max_new_tokens=6, do_sample=False, output_logits=True, return_dict_in_generate=True)
    ref_tokens = ref.sequences[:, tokens.shape[1]:].tolist()
    ref_logits = torch.stack(ref.logits, dim=1).numpy()
    # the logits of the prompt's last position and of every cached step, over the whole vocabulary
    np.testing.assert_allclose(logits[:, :ref_logits.shape[1]], ref_logits, atol=1e-3, rtol=0)
    eos = config.eos_token_ids
    ref_tokens = [row[:next((i + 1 for i, t in enumerate(row) if t in eos), len(row))] for row in ref_tokens]
    assert generated == ref_tokens
    assert tokenizer.decode(generated[0]).strip().startswith("The sky")
