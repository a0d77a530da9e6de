"""Prompt templates: versioned text files in the package, or a method's official files from a user path.

Templates use ``${name}`` placeholders (``string.Template``), so JSON braces in prompts need no escaping.
A template's hash is part of every request built from it. A file may hold a system part and a user part
separated by a line ``---user---``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import string
from importlib import resources

__all__ = ["PromptConfig", "Template", "load_template", "PromptError"]

_SPLIT = "---user---"


class PromptError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class PromptConfig:
    """``name`` is a packaged template (e.g. ``imagescope/reasoner``); ``path`` overrides it with a file."""

    name: str
    path: str | None = None


@dataclasses.dataclass(frozen=True)
class Template:
    name: str
    source: str  # where it was read from
    system: str
    user: str

    @property
    def hash(self) -> str:
        return hashlib.sha256(f"{self.system}\0{self.user}".encode()).hexdigest()

    def render(self, **values: str) -> tuple[str, str]:
        try:
            return (string.Template(self.system).substitute(values) if self.system else "",
                    string.Template(self.user).substitute(values))
        except KeyError as exc:
            raise PromptError(f"{self.source}: template needs ${{{exc.args[0]}}}, which was not given "
                              f"(given: {', '.join(sorted(values)) or 'nothing'})") from None
        except ValueError as exc:
            raise PromptError(f"{self.source}: malformed placeholder ({exc})") from None


def load_template(config: PromptConfig) -> Template:
    if config.path:
        if not os.path.isfile(config.path):
            raise PromptError(f"{config.path}: prompt file not found (prompt {config.name!r})")
        text, source = open(config.path, encoding="utf-8").read(), config.path
    else:
        ref = resources.files("cirkit.prompts").joinpath(*f"{config.name}.txt".split("/"))
        if not ref.is_file():
            raise PromptError(f"no packaged prompt {config.name!r} (cirkit/prompts/{config.name}.txt)")
        text, source = ref.read_text(encoding="utf-8"), f"cirkit/prompts/{config.name}.txt"
    system, sep, user = text.partition(_SPLIT)
    if not sep:
        system, user = "", text
    return Template(config.name, source, system.strip(), user.strip())
