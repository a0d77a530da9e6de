"""Each method is found by its name: its composition, its stages and its prompts live in cirkit/methods/<name>/,
and the registry module defines nothing of its own."""

import importlib
import pathlib

import cirkit.pipelines.methods as registry
from cirkit.engine.stage import Stage
from cirkit.experiment.pipeline import PIPELINES
from cirkit.models.prompts import PromptConfig, load_template


def test_every_method_is_composed_in_its_own_home_with_its_prompts_beside_it():
    for name in registry.METHODS:
        home = pathlib.Path(importlib.import_module(f"cirkit.methods.{name}").__file__).parent
        assert PIPELINES[name].build.__module__ == f"cirkit.methods.{name}.pipeline"
        prompts = sorted((home / "prompts").rglob("*.txt"))
        assert prompts, name
        for path in prompts:  # each is found by its packaged name, from its home
            rel = path.relative_to(home / "prompts").with_suffix("").as_posix()
            assert load_template(PromptConfig(f"{name}/{rel}")).source == f"cirkit/methods/{name}/prompts/{rel}.txt"


def test_the_registry_defines_no_stages_and_keeps_old_imports_working():
    assert not [k for k, v in vars(registry).items() if isinstance(v, Stage)]
    from cirkit.methods.imagescope.pipeline import ImageScopeConfig

    assert registry.ImageScopeConfig is ImageScopeConfig
