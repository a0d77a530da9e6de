"""Local transformers models (torch extra): chat LLMs (AutoModelForCausalLM) and VLMs
(AutoModelForImageTextToText), batched greedy generation with left padding.

Memory: a model folder is loaded once per process however many backends use it, and requests are batched
by tokens (``BackendConfig.batch_tokens``, prompt plus new tokens, padding included) as well as by count, so
the key/value cache and attention of a batch of long few-shot prompts stay bounded. Requests are grouped by
their decoding settings and sorted by length before batching (less padding); answers come back in request
order and do not depend on how they were batched (greedy; see tests/models/test_local_batching.py).

P(yes) for verifier-style requests comes from the first generated token's distribution over the first
tokens of "Yes" and "No".
"""

from __future__ import annotations

import json
import os
import threading
import weakref
from collections.abc import Iterator

from ..batching import plan_batches
from ..config import BackendConfig, BackendError
from ..requests import ChatRequest, ChatResponse

__all__ = ["TransformersBackend"]

_MODELS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # real folder -> loaded model
_MODELS_LOCK = threading.Lock()


def _is_vlm(path: str) -> bool:
    try:
        config = json.loads(open(os.path.join(path, "config.json")).read())
    except (OSError, ValueError):
        return False
    return "vision_config" in config


def _load_model(path: str, vlm: bool, torch, transformers):
    """The model in ``path``, shared with every other backend of this process that holds it."""
    key = os.path.realpath(path)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            auto = transformers.AutoModelForImageTextToText if vlm else transformers.AutoModelForCausalLM
            model = auto.from_pretrained(path, dtype=torch.float32).eval()
            _MODELS[key] = model
        return model


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
        else:
            self.processor = None
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        self.model = _load_model(path, self.vlm, torch, transformers)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._yes = self.tokenizer.encode("Yes", add_special_tokens=False)[:1]
        self._no = self.tokenizer.encode("No", add_special_tokens=False)[:1]
        eos = self.model.generation_config.eos_token_id
        self._eos = set(eos if isinstance(eos, list) else [] if eos is None else [eos]) | {self.tokenizer.eos_token_id}

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

    def _inputs(self, texts: list[str], batch: list[ChatRequest]):
        if not self.vlm:
            return self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        from ...encoders.clip_image import open_image

        images = [[open_image(im.path, im.box) for im in r.images()] for r in batch]
        return self.processor(text=texts, images=images if any(images) else None, return_tensors="pt", padding=True)

    def stream(self, requests: list[ChatRequest]) -> Iterator[tuple[int, ChatResponse]]:
        """(position, answer) for every request, batch by batch as they finish: the batches are planned over
        the whole list (see :mod:`..batching`), so a step's requests run as full batches of similar length."""
        texts = [self.tokenizer.apply_chat_template(self._messages(r), add_generation_prompt=True, tokenize=False)
                 for r in requests]
        # text tokens only: a VLM's image tokens are added by its processor (small next to few-shot prompts)
        lengths = [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]
        for positions in plan_batches(requests, lengths, max(1, self.config.batch_size), self.config.batch_tokens):
            batch = [requests[i] for i in positions]
            yield from zip(positions, self._generate([texts[i] for i in positions], batch))

    def complete(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        out: list[ChatResponse | None] = [None] * len(requests)
        for i, response in self.stream(requests):
            out[i] = response
        return out  # type: ignore[return-value]

    def _generate(self, texts: list[str], batch: list[ChatRequest]) -> list[ChatResponse]:
        decoding = batch[0].decoding  # one decoding per batch (plan_batches never mixes them)
        inputs = self._inputs(texts, batch)
        with self.torch.inference_mode():
            gen = self.model.generate(**inputs, do_sample=False, max_new_tokens=max(r.decoding.max_tokens for r in batch),
                                      output_scores=decoding.want_probability, return_dict_in_generate=True,
                                      pad_token_id=self.tokenizer.pad_token_id,
                                      **({"repetition_penalty": decoding.repetition_penalty}
                                         if decoding.repetition_penalty is not None else {}))
        new = gen.sequences[:, inputs["input_ids"].shape[1]:]
        out = []
        for i, r in enumerate(batch):
            tokens = new[i][: r.decoding.max_tokens].tolist()
            text = self.tokenizer.decode(tokens, skip_special_tokens=True).strip()
            prob = None
            if r.decoding.want_probability and gen.scores and self._yes and self._no:
                p = self.torch.softmax(gen.scores[0][i].float(), -1)
                y, n = float(p[self._yes[0]]), float(p[self._no[0]])
                prob = y / (y + n) if y + n > 0 else None
            # its own end of sequence, not the batch's: a row padded after its end stopped
            finish = "stop" if any(t in self._eos for t in tokens) else "length"
            out.append(ChatResponse(text, self.name, finish, prob))
        return out
