"""Local transformers models (torch extra): chat LLMs (AutoModelForCausalLM) and VLMs
(AutoModelForImageTextToText), batched greedy generation with left padding.

P(yes) for verifier-style requests comes from the first generated token's distribution over the first
tokens of "Yes" and "No".
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

from ..batching import plan_batches
from ..config import BackendConfig, BackendError
from ..requests import ChatRequest, ChatResponse

__all__ = ["TransformersBackend"]


def _is_vlm(path: str) -> bool:
    try:
        config = json.loads(open(os.path.join(path, "config.json")).read())
    except (OSError, ValueError):
        return False
    return "vision_config" in config


class TransformersBackend:
    def __init__(self, config: BackendConfig) -> None:
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise BackendError("the transformers backend needs the torch extra: pip install 'cirkit[torch]'") from exc
        path = config.model
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise BackendError(f"{path}: not a local transformers model folder (no config.json)")
        self.config, self.torch = config, torch
        self.name = os.path.basename(os.path.normpath(path))
        self.vlm = _is_vlm(path)
        if self.vlm:
            self.processor = transformers.AutoProcessor.from_pretrained(path)
            self.tokenizer = self.processor.tokenizer
            self.model = transformers.AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32)
        else:
            self.processor = None
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(path)
            self.model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        self.model.eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._yes = self.tokenizer.encode("Yes", add_special_tokens=False)[:1]
        self._no = self.tokenizer.encode("No", add_special_tokens=False)[:1]

    def _messages(self, request: ChatRequest) -> list[dict]:
        out = []
        for m in request.messages:
            if self.vlm:
                content = [{"type": "image"} for _ in m.images] + [{"type": "text", "text": m.text}]
                out.append({"role": m.role, "content": content})
            else:
                if m.images:
                    raise BackendError(f"{self.config.model} is a text-only model; role {request.role!r} sends images")
                out.append({"role": m.role, "content": m.text})
        return out

    def _inputs(self, batch: list[ChatRequest]):
        texts = [self.tokenizer.apply_chat_template(self._messages(r), add_generation_prompt=True, tokenize=False)
                 for r in batch]
        if not self.vlm:
            return self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        from ...encoders.clip_image import open_image

        images = [[open_image(im.path, im.box) for im in r.images()] for r in batch]
        return self.processor(text=texts, images=images if any(images) else None, return_tensors="pt", padding=True)

    def stream(self, requests) -> Iterator[tuple[int, ChatResponse]]:
        """(position, answer) for every request, generated in batches planned over the whole list (similar
        prompt lengths together, so dynamic padding stays small; see :mod:`..batching`)."""
        texts = [self.tokenizer.apply_chat_template(self._messages(r), add_generation_prompt=True, tokenize=False)
                 for r in requests]
        lengths = [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]
        for batch in plan_batches(requests, lengths, max(1, self.config.batch_size)):
            yield from zip(batch, self.complete([requests[i] for i in batch]))

    def complete(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        out: list[ChatResponse] = []
        size = max(1, self.config.batch_size)
        for start in range(0, len(requests), size):
            batch = requests[start : start + size]
            decoding = batch[0].decoding
            inputs = self._inputs(batch)
            with self.torch.no_grad():
                gen = self.model.generate(**inputs, do_sample=False, max_new_tokens=max(r.decoding.max_tokens for r in batch),
                                          output_scores=decoding.want_probability, return_dict_in_generate=True,
                                          pad_token_id=self.tokenizer.pad_token_id,
                                          **({"repetition_penalty": decoding.repetition_penalty}
                                             if decoding.repetition_penalty is not None else {}))
            new = gen.sequences[:, inputs["input_ids"].shape[1]:]
            for i, r in enumerate(batch):
                text = self.tokenizer.decode(new[i][: r.decoding.max_tokens], skip_special_tokens=True).strip()
                prob = None
                if r.decoding.want_probability and gen.scores and self._yes and self._no:
                    p = self.torch.softmax(gen.scores[0][i].float(), -1)
                    y, n = float(p[self._yes[0]]), float(p[self._no[0]])
                    prob = y / (y + n) if y + n > 0 else None
                finish = "length" if len(new[i]) >= r.decoding.max_tokens else "stop"
                out.append(ChatResponse(text, self.name, finish, prob))
        return out
