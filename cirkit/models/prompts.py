"""Prompt templates: versioned text files in the package, or a method's official files from a user path.

Templates use ``${name}`` placeholders (``string.Template``), so JSON braces in prompts need no escaping.
A template's hash is part of every request built from it. A file is a sequence of turns: the text before
the first marker is the system message, then ``---user---`` and ``---assistant---`` lines start turns, so
few-shot examples can be real chat turns. The last turn must be the user's.

Official prompt files of other projects (e.g. ImageScope's) use ``[[NAME]]`` placeholders instead; a file
that has them is read in that format: each ``[[NAME]]`` becomes the cirkit variable ``placeholders`` maps it
to (``INSTRUCTION`` -> ``instruction``, ``REF_IMAGE_DESC`` -> ``reference`` by default, else the lower-cased
name), and a literal ``$`` stays literal.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import string
from importlib import resources

__all__ = ["PromptConfig", "Template", "load_template", "PromptError"]

_MARKERS = {"---user---": "user", "---assistant---": "assistant", "---system---": "system"}


class PromptError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class PromptConfig:
    """``name`` is a packaged template (e.g. ``imagescope/reasoner``); ``path`` overrides it with a file."""

    name: str
    path: str | None = None
    placeholders: tuple[tuple[str, str], ...] = (("INSTRUCTION", "instruction"), ("REF_IMAGE_DESC", "reference"))


_BRACKETS = re.compile(r"\[\[([A-Za-z_][A-Za-z0-9_]*)\]\]")


def _from_brackets(text: str, placeholders: tuple[tuple[str, str], ...]) -> str:
    """A ``[[NAME]]`` file as a ``${name}`` template (``$`` escaped first, so the file's own text stays)."""
    names = dict(placeholders)
    return _BRACKETS.sub(lambda m: "${" + names.get(m[1], m[1].lower()) + "}", text.replace("$", "$$"))


@dataclasses.dataclass(frozen=True)
class Template:
    name: str
    source: str  # where it was read from
    turns: tuple[tuple[str, str], ...]  # (role, text), the last one the user's

    @property
    def hash(self) -> str:
        return hashlib.sha256("\0".join(f"{r}\0{t}" for r, t in self.turns).encode()).hexdigest()

    def render(self, **values: str) -> list[tuple[str, str]]:
        try:
            return [(role, string.Template(text).substitute(values)) for role, text in self.turns]
        except KeyError as exc:
            raise PromptError(f"{self.source}: template needs ${{{exc.args[0]}}}, which was not given "
                              f"(given: {', '.join(sorted(values)) or 'nothing'})") from None
        except ValueError as exc:
            raise PromptError(f"{self.source}: malformed placeholder ({exc})") from None


def _packaged(name: str):
    """A packaged template: ``method/rest`` lives in the method's home (``cirkit/methods/<method>/prompts/``);
    shared templates (``generic/...``) in ``cirkit/prompts/``. The name, not the folder, enters keys."""
    method, _, rest = name.partition("/")
    if rest and method.isidentifier():
        ref = resources.files("cirkit.methods").joinpath(method, "prompts", *f"{rest}.txt".split("/"))
        if ref.is_file():
            return ref, f"cirkit/methods/{method}/prompts/{rest}.txt"
    ref = resources.files("cirkit.prompts").joinpath(*f"{name}.txt".split("/"))
    if not ref.is_file():
        raise PromptError(f"no packaged prompt {name!r} (cirkit/methods/{method}/prompts/{rest}.txt or "
                          f"cirkit/prompts/{name}.txt)")
    return ref, f"cirkit/prompts/{name}.txt"


def load_template(config: PromptConfig) -> Template:
    if config.path:
        if not os.path.isfile(config.path):
            raise PromptError(f"{config.path}: prompt file not found (prompt {config.name!r})")
        text, source = open(config.path, encoding="utf-8").read(), config.path
        if _BRACKETS.search(text):
            text = _from_brackets(text, config.placeholders)
    else:
        ref, source = _packaged(config.name)
        text = ref.read_text(encoding="utf-8")
    turns: list[tuple[str, list[str]]] = [("system", [])]
    for line in text.splitlines():
        if line.strip() in _MARKERS:
            turns.append((_MARKERS[line.strip()], []))
        else:
            turns[-1][1].append(line)
    cleaned = tuple((role, "\n".join(lines).strip()) for role, lines in turns)
    cleaned = tuple(t for i, t in enumerate(cleaned) if t[1] or i > 0)
    if len(cleaned) == 1 and cleaned[0][0] == "system":  # no markers: the whole file is the user's turn
        cleaned = (("user", cleaned[0][1]),)
    if not cleaned or cleaned[-1][0] != "user":
        raise PromptError(f"{source}: the last turn of a prompt must be the user's (a ---user--- section)")
    return Template(config.name, source, cleaned)
