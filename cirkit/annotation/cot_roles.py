"""CoT annotations from model roles: a captioner describes each reference image, a reasoner reads that caption
and the instruction and answers with its reasoning and a conclusion (the target's description).

Every call is a cached model call (one response per request, keyed by the backend, the template and the
inputs), so annotating more queries asks only for the new ones. Answers that cannot be read fall back (the
caption to "", the conclusion to the reference caption) and are counted, as in the other stages; such
annotations are kept, marked ``ok = False``.
"""

from __future__ import annotations

import dataclasses

from ..data.model import ComposedQuery, ImageRef, Split
from ..engine import Artifact, stage
from ..models.config import BackendConfig
from ..models.prompts import PromptConfig
from ..models.requests import Decoding
from ..models.roles import Answers, EngineRoles, RoleConfig
from .cot import CotAnnotation, CotAnnotations

__all__ = ["CotRolesConfig", "annotate_with_roles", "cot_references", "cot_reasoning_fields", "cot_reasoning_fallbacks",
           "assemble_cot"]


@dataclasses.dataclass(frozen=True)
class CotRolesConfig:
    """Who writes the annotations. The defaults are packaged prompts and an OpenAI-compatible server; any
    backend kind works (the oracle answers from the built-in benchmark's scene graphs)."""

    captioner: RoleConfig = RoleConfig(BackendConfig(), PromptConfig("cot/captioner"), Decoding(max_tokens=128))
    reasoner: RoleConfig = RoleConfig(BackendConfig(), PromptConfig("cot/reasoner"), Decoding(max_tokens=512))
    reasoner_sees_image: bool = False  # True: the reasoner also gets the reference image (a multimodal model)
    # keys other answer formats use for the two parts (ImageScope-style "operations"/"target", the oracle's)
    aliases: tuple[tuple[str, str], ...] = (("operations", "reasoning"), ("target", "conclusion"))


@stage(version=1)
def cot_references(config: None, split: Split) -> tuple[ImageRef, ...]:
    """The reference image of every composed query, in query order."""
    images = {im.id: im for im in split.gallery.images}
    out = []
    for q in split.queries:
        if not isinstance(q, ComposedQuery) or q.reference not in images:
            raise ValueError(f"{split.benchmark} {split.split}: query {q.id} has no reference image in the gallery")
        out.append(images[q.reference])
    return tuple(out)


@stage(version=1)
def cot_reasoning_fields(config: None, split: Split, captions: Answers) -> tuple[dict, ...]:
    return tuple({"reference": c, "instruction": q.text} for q, c in zip(split.queries, captions.values, strict=True))


@stage(version=1)
def cot_reasoning_fallbacks(config: None, captions: Answers) -> tuple[dict, ...]:
    return tuple({"reasoning": "", "conclusion": c} for c in captions.values)


def _text(value) -> str:
    """A part as one string: lists (steps, operations) joined, everything else as text."""
    if isinstance(value, (list, tuple)):
        return " ".join(str(v).strip() for v in value if str(v).strip())
    return str(value).strip()


@stage(version=1, helpers=[_text])
def assemble_cot(config: None, split: Split, captions: Answers, reasoning: Answers) -> CotAnnotations:
    """One annotation per query; ``ok`` only where both answers were read."""
    items = []
    for q, caption, cap_ok, answer, ok in zip(split.queries, captions.values, captions.ok, reasoning.values,
                                              reasoning.ok, strict=True):
        items.append(CotAnnotation(q.id, q.reference, q.text, _text(caption), _text(answer.get("reasoning", "")),
                                   _text(answer.get("conclusion", "")), cap_ok and ok))
    models = ", ".join(sorted(set(captions.models) | set(reasoning.models)))
    return CotAnnotations(split.benchmark, split.split, f"roles: {models}", tuple(items),
                          sum(1 for o in captions.ok if not o), sum(1 for o in reasoning.ok if not o))


def annotate_with_roles(roles: EngineRoles, config: CotRolesConfig, split: Artifact, *, name: str = "cot") -> Artifact:
    """Wire the annotation into a pipeline (``roles.folders`` names the model folders of local backends)."""
    engine = roles.engine
    images = engine.run(cot_references, None, split=split, step=f"{name}/references")
    captions = roles.caption(config.captioner, images, name=f"{name}/captioner")
    fields = engine.run(cot_reasoning_fields, None, split=split, captions=captions, step=f"{name}/fields")
    fallbacks = engine.run(cot_reasoning_fallbacks, None, captions=captions, step=f"{name}/fallbacks")
    reasoning = roles.reason(config.reasoner, fields, images if config.reasoner_sees_image else None,
                             fallbacks=fallbacks, required=("reasoning", "conclusion"), name=f"{name}/reasoner",
                             aliases=config.aliases)
    return engine.run(assemble_cot, None, split=split, captions=captions, reasoning=reasoning, step=f"{name}/assemble")
