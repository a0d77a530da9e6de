"""CLIP-based substitutes for the vision roles, for machines with no vision-language model (labelled as such).

- captioner: retrieval over a phrase bank (the checkpoint's ``phrases.txt``, else the built-in scene
  vocabulary): the best background and every object phrase that stands out, in the benchmark's grammar;
- verifier: a question becomes a statement; P(yes) is a logistic function of how far the statement's CLIP
  score lies above the image's scores for the whole phrase bank (a per-image calibration, in standard
  deviations);
- evaluator: yes when the candidate matches the instruction better than the reference does;
- multimodal reasoner: caption the reference and append the instruction (OSrCIR's JSON keys).
They are honest baselines for the pipeline's plumbing, not replacements for real models.
"""

from __future__ import annotations

import json
import math
import os
import re

import numpy as np

from ..config import BackendConfig, BackendError
from ..requests import ChatRequest, ChatResponse

__all__ = ["ClipSubstituteBackend", "builtin_phrases", "question_to_statement"]

_SHARPNESS = 1.5  # logistic slope per standard deviation above the phrase bank


def builtin_phrases() -> tuple[list[str], list[str]]:
    from ...builtin.scenes import BACKGROUNDS, COLOURS, POSITIONS, SHAPES, SIZES

    objects = [f"a {s} {c} {sh} at the {p}" for s in SIZES for c in COLOURS for sh in SHAPES for p in POSITIONS]
    return objects, [f"on a {b} background" for b in BACKGROUNDS]


def question_to_statement(question: str) -> str:
    q = question.strip().rstrip("?").strip()
    q = re.sub(r"^(answer the question with yes or no\.?\s*)", "", q, flags=re.I)
    q = re.sub(r"^(is|are|does|do)\s+(there|the image|the picture|this image)\s+(show|contain|have)?\s*", "", q, flags=re.I)
    q = re.sub(r"^(is|are)\s+", "", q, flags=re.I)
    return q or question


class ClipSubstituteBackend:
    def __init__(self, config: BackendConfig) -> None:
        from ...encoders.clip_encoder import ClipEncoder
        from ...encoders.stages import EmbedConfig, clip_checkpoint, encoder_for

        if not os.path.isfile(os.path.join(config.model, "config.json")):
            raise BackendError(f"{config.model}: the clip substitutes need a CLIPModel folder as backend.model")
        # the registry's copy, the one the embedding stages use with the default embed config: loaded once
        self.encoder: ClipEncoder = encoder_for(EmbedConfig(), clip_checkpoint(config.model))
        self.name = f"clip-substitute:{os.path.basename(os.path.normpath(config.model))}"
        bank = os.path.join(config.model, "phrases.txt")
        if os.path.isfile(bank):
            lines = [ln.strip() for ln in open(bank, encoding="utf-8") if ln.strip()]
            self.objects, self.backgrounds = [ln for ln in lines if "background" not in ln], [ln for ln in lines if "background" in ln]
        else:
            self.objects, self.backgrounds = builtin_phrases()
        self._obj = self._unit(self.encoder.encode_texts(self.objects))
        self._bg = self._unit(self.encoder.encode_texts(self.backgrounds)) if self.backgrounds else None

    @staticmethod
    def _unit(x: np.ndarray) -> np.ndarray:
        return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)

    def _image(self, request: ChatRequest, i: int = 0) -> np.ndarray:
        images = request.images()
        if len(images) <= i:
            raise BackendError(f"role {request.role!r} needs {i + 1} image(s), the request has {len(images)}")
        im = images[i]
        return self._unit(self.encoder.encode_files([im.path], [im.box])[0])

    def _pair(self, request: ChatRequest) -> tuple[np.ndarray, np.ndarray]:
        """(reference, candidate): two images, or the halves of one stitched image (reference left)."""
        images = request.images()
        if len(images) != 1:
            return self._image(request, 0), self._image(request, 1)
        from PIL import Image

        im = images[0]
        width, height = Image.open(im.path).size
        halves = [(0.0, 0.0, width / 2, float(height)), (width / 2, 0.0, width / 2, float(height))]
        vectors = self.encoder.encode_files([im.path, im.path], halves)
        return self._unit(vectors[0]), self._unit(vectors[1])

    def caption(self, image: np.ndarray) -> str:
        s = self._obj @ image
        z = (s - s.mean()) / (s.std() + 1e-9)
        picked, used = [], set()
        for j in np.argsort(-z):
            where = self.objects[j].rsplit(" at the ", 1)[-1]
            if z[j] < 2.0 or len(picked) == 3:
                break
            if where not in used:
                picked.append(self.objects[j])
                used.add(where)
        if not picked:
            picked = [self.objects[int(np.argmax(s))]]
        background = f" {self.backgrounds[int(np.argmax(self._bg @ image))]}" if self._bg is not None else ""
        return " and ".join(picked) + background

    def yes_probability(self, image: np.ndarray, statement: str) -> float:
        s = float(self._unit(self.encoder.encode_texts([statement])[0]) @ image)
        bank = self._obj @ image
        z = (s - bank.mean()) / (bank.std() + 1e-9)
        return 1 / (1 + math.exp(-_SHARPNESS * (z - 1.0)))

    def _answer(self, request: ChatRequest) -> ChatResponse:
        role = request.role
        if role == "captioner":
            return ChatResponse(self.caption(self._image(request)), self.name, "stop")
        if role == "verifier":
            p = self.yes_probability(self._image(request), question_to_statement(request.field("question")))
            return ChatResponse("Yes" if p >= 0.5 else "No", self.name, "stop", p)
        if role == "evaluator":
            ref, cand = self._pair(request)
            text = self._unit(self.encoder.encode_texts([request.field("instruction")])[0])
            margin = float(cand @ text - ref @ text) * 10
            p = 1 / (1 + math.exp(-margin))
            return ChatResponse("Yes" if p >= 0.5 else "No", self.name, "stop", p)
        if role == "multimodal_reasoner":
            cap = self.caption(self._image(request))
            target = f"{cap}, {request.field('instruction')}"
            body = {"Original Image Description": cap, "Thoughts": "", "Reflections": "", "Target Image Description": target}
            return ChatResponse(json.dumps(body), self.name, "stop")
        raise BackendError(f"the clip substitutes cannot act as a {role}; use an LLM backend for that role")

    def complete(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        return [self._answer(r) for r in requests]
