"""Stage declarations: a pure function over a frozen config and input artifacts, plus its identity.

A stage's identity is its name, its explicit ``version``, the transitive fingerprint of its code (its own
function and every function, class and constant of cirkit or of its own package that the code reaches; see
:mod:`.fingerprint`) and the installed versions of the keyed third-party distributions that code reaches
(see :mod:`.provenance`). Edit any of that logic and the identity changes by itself; bump ``version`` to
invalidate for a reason the code does not show (a new model snapshot, say), and declare in ``helpers`` what
the code reaches only dynamically (a function looked up at run time by a name the code never spells).

An item-mapping stage (``over="images"``) receives a shard of items in that argument and returns one output
per item, in order (a sequence, or an array whose first axis is the items). The engine caches every item
under its own key and calls the function only for items it has not seen.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any

from . import provenance
from .fingerprint import CodeAnalysis, analyse
from .hashing import digest

__all__ = ["Stage", "stage", "StageDefinitionError"]


class StageDefinitionError(TypeError):
    """A stage is declared in a way the engine cannot cache faithfully."""


class Stage:
    """A declared stage; call it through an :class:`~cirkit.engine.executor.Engine`, not directly."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        version: int | str,
        name: str | None = None,
        helpers: Iterable[Any] = (),
        over: str | None = None,
        shard_size: int = 256,
        volatile: bool = False,
        item_key: Callable[[Any], Any] | None = None,
        opaque: Iterable[Any] = (),
        stream: bool = False,
    ) -> None:
        self.fn = fn
        self.stream = stream
        self.opaque = tuple(opaque)
        self.volatile = volatile
        self.item_key = item_key
        self.name = name or fn.__name__
        self.version = version
        self.helpers = tuple(helpers) + ((item_key,) if item_key is not None else ())
        self.over = over
        self.shard_size = int(shard_size)
        params = list(inspect.signature(fn).parameters)
        if not params or params[0] != "config":
            raise StageDefinitionError(f"stage {self.name}: the first parameter must be named 'config'")
        self.input_names = tuple(params[1:])
        if over is not None and over not in self.input_names:
            raise StageDefinitionError(f"stage {self.name}: over={over!r} is not one of its inputs {self.input_names}")
        if volatile and over is not None:
            raise StageDefinitionError(f"stage {self.name}: an item-mapping stage cannot be volatile")
        if stream and over is None:
            raise StageDefinitionError(f"stage {self.name}: only an item-mapping stage (over=...) can stream")
        if self.shard_size < 1:
            raise StageDefinitionError(f"stage {self.name}: shard_size must be >= 1")
        functools.update_wrapper(self, fn)

    @property
    def analysis(self) -> CodeAnalysis:
        """The transitive code fingerprint and what went into it (memoised per process)."""
        return analyse(self.fn, self.helpers, self.opaque)

    @property
    def code(self) -> str:
        return self.analysis.digest

    @property
    def environment(self) -> dict[str, str]:
        """Installed versions of the keyed distributions this stage's code reaches."""
        return provenance.environment(self.analysis.packages)

    @property
    def identity(self) -> str:
        return digest({"name": self.name, "version": self.version, "code": self.code, "environment": self.environment})

    def item_digest(self, item: Any) -> str:
        return digest(item if self.item_key is None else self.item_key(item))

    def check_config(self, config: Any) -> None:
        if config is not None and not (dataclasses.is_dataclass(config) and config.__dataclass_params__.frozen):
            raise StageDefinitionError(f"stage {self.name}: config must be a frozen dataclass, got {type(config).__name__}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Calling a stage directly runs the bare function (useful in tests); nothing is cached."""
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        kind = f"map over {self.over}" if self.over else "stage"
        return f"<{kind} {self.name} v{self.version}>"


def stage(
    *, version: int | str, name: str | None = None, helpers: Iterable[Any] = (), over: str | None = None,
    shard_size: int = 256, volatile: bool = False, item_key: Callable[[Any], Any] | None = None,
    opaque: Iterable[Any] = (), stream: bool = False,
) -> Callable[[Callable[..., Any]], Stage]:
    """Declare a pure stage. ``helpers`` are functions or classes whose code is part of its identity
    although its code never names them (dynamic dispatch); everything it names is followed by itself,
    type annotations included (annotate an input whose methods the stage calls).

    ``item_key`` (item-mapping stages) maps an item to what identifies it for caching (default: the whole
    item); an image's content hash rather than its path, say, so that moving a dataset keeps its cache.
    It is fingerprinted like a helper. ``opaque`` lists definitions the analysis must not look into: a
    boundary whose behaviour enters the key another way (the ``chat`` stage stops at the backend factory;
    who answers is its ``BackendIdentity`` input, so a retry-loop edit never discards cached answers).
    ``stream=True`` (item-mapping stages) calls the function once with every missing item; it yields
    (position, output) pairs as they finish and the engine publishes them in shards (see :mod:`.streaming`).
    ``volatile=True`` marks a stage that reads the outside world (annotation files, image files): it runs
    on every call, even in dry runs, and its output's content hash decides what downstream recomputes.
    """

    def wrap(fn: Callable[..., Any]) -> Stage:
        return Stage(fn, version=version, name=name, helpers=helpers, over=over, shard_size=shard_size,
                     volatile=volatile, item_key=item_key, opaque=opaque, stream=stream)

    return wrap
