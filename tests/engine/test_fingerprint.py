"""Stage identity: comments, docstrings and formatting do not matter; logic, and every helper it reaches, does."""

import importlib.util
import sys
import textwrap

import pytest

from cirkit.engine import StageDefinitionError, fingerprint, source_fingerprint, stage


def load_module(tmp_path, name, source):
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


BASE = """
from cirkit.engine import stage

def helper(x):
    return x * 2

@stage(version=1, helpers=[helper])
def s(config, x):
    return helper(x) + 1
"""

REFORMATTED = '''
from cirkit.engine import stage

def helper(x):
    """Doubles."""
    # a comment
    return (x *
            2)

@stage(version=1,
       helpers=[helper])
def s(config,
      x):
    """A docstring that says what s does."""
    return helper( x )+1   # trailing comment
'''

HELPER_EDITED = BASE.replace("return x * 2", "return x * 3")
BODY_EDITED = BASE.replace("helper(x) + 1", "helper(x) + 2")
VERSION_BUMPED = BASE.replace("version=1", "version=2")


@pytest.mark.parametrize("variant,same", [(REFORMATTED, True), (HELPER_EDITED, False), (BODY_EDITED, False)])
def test_identity_tracks_logic_not_layout(tmp_path, variant, same):
    base = load_module(tmp_path, "fp_base", BASE).s
    other = load_module(tmp_path, f"fp_variant_{abs(hash(variant))}", variant).s
    assert (base.code == other.code) is same
    assert (base.identity == other.identity) is same


def test_version_is_part_of_identity_but_not_of_code(tmp_path):
    a = load_module(tmp_path, "fp_v1", BASE).s
    b = load_module(tmp_path, "fp_v2", VERSION_BUMPED).s
    assert a.code == b.code
    assert a.identity != b.identity


def test_undeclared_helper_edit_invalidates(tmp_path):
    """A helper the stage calls but does not declare is followed anyway (it used to be silently ignored)."""
    src = BASE.replace("helpers=[helper]", "helpers=[]")
    a = load_module(tmp_path, "fp_undeclared_a", src).s
    b = load_module(tmp_path, "fp_undeclared_b", src.replace("return x * 2", "return x * 3")).s
    c = load_module(tmp_path, "fp_undeclared_c", src.replace("return x * 2", "return x * 2  # twice")).s
    assert a.code != b.code
    assert a.code == c.code
    assert "fp_undeclared_a.helper" in a.analysis.deps


def test_source_fingerprint_ignores_module_docstring_and_blank_lines():
    assert source_fingerprint('"""doc"""\nx = 1\n') == source_fingerprint("\n\nx = 1\n")
    assert source_fingerprint("x = 1\n") != source_fingerprint("x = 2\n")
    assert source_fingerprint("f(a, b)\n") != source_fingerprint("f(b, a)\n")


def test_stage_declaration_errors():
    with pytest.raises(StageDefinitionError, match="config"):
        stage(version=1)(lambda cfg, x: x)
    with pytest.raises(StageDefinitionError, match="over"):

        @stage(version=1, over="nope")
        def s(config, items):
            return items


NESTED = """
from cirkit.engine import stage

def factor(x):
    return x * 2

def make(fn):
    @stage(version=1)
    def s(config, x):
        return fn(x)
    return s

s = make(factor)
"""


def test_nested_stage_follows_its_closure(tmp_path):
    """A stage built inside a function reaches what it closes over (here a module-level function)."""
    a = load_module(tmp_path, "fp_nested_a", NESTED).s
    b = load_module(tmp_path, "fp_nested_b", NESTED.replace("x * 2", "x * 5")).s
    c = load_module(tmp_path, "fp_nested_c", NESTED.replace("x * 2", "x * 2  # doubled")).s
    assert a.code != b.code and a.code == c.code
    assert "fp_nested_a.factor" in a.analysis.deps


OPTIONAL_IMPORT = """
from cirkit.engine import stage

try:
    import numpy as np
except ImportError:
    np = None

@stage(version=1)
def s(config, x):
    return np.sum(x)
"""


def test_an_optional_import_still_keys_its_package(tmp_path):
    """``try: import numpy as np / except: np = None`` binds np twice; the import still counts."""
    s = load_module(tmp_path, "fp_optional", OPTIONAL_IMPORT).s
    assert s.analysis.packages == ("numpy",)
    assert set(s.environment) == {"numpy"}


SWAP = """
from cirkit.engine import stage

from . import a, b

@stage(version=1)
def s(config, x):
    return a.f() + 2 * b.f()
"""
F = "from .g import g\n\ndef f():\n    return g()\n"


def test_which_definition_a_name_reaches_is_part_of_the_key(tmp_path, monkeypatch):
    """Swapping two definitions between modules keeps every text but changes the result (a's g returns 1
    and b's 2, then the other way round: 1 + 2*2 = 5, then 2 + 2*1 = 4), so the key must change."""
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    pkg = tmp_path / "fp_swap"
    for sub, body in (("", ""), ("a", F), ("b", F)):
        (pkg / sub).mkdir(parents=True, exist_ok=True)
        (pkg / sub / "__init__.py").write_text(body)
    (pkg / "stages.py").write_text(SWAP)
    codes = []
    for ga, gb in (("1", "2"), ("2", "1")):
        (pkg / "a" / "g.py").write_text(f"def g():\n    return {ga}\n")
        (pkg / "b" / "g.py").write_text(f"def g():\n    return {gb}\n")
        fingerprint.clear_caches()  # the analysis reads the files, as a new process would
        codes.append(importlib.import_module("fp_swap.stages").s.code)
    assert codes[0] != codes[1]


def test_which_import_a_definition_uses_is_part_of_its_digest(tmp_path, monkeypatch):
    """Module a imports g from x (returns 1) and b from y (returns 2), then the other way round: every
    definition keeps its name and text, only the imports (outside any definition) change, and so does the
    result (1 + 2*2 = 5, then 2 + 2*1 = 4)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    pkg = tmp_path / "fp_imports"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "x.py").write_text("def g():\n    return 1\n")
    (pkg / "y.py").write_text("def g():\n    return 2\n")
    (pkg / "stages.py").write_text(SWAP)
    codes = []
    for first, second in (("x", "y"), ("y", "x")):
        (pkg / "a.py").write_text(f"from .{first} import g\n\ndef f():\n    return g()\n")
        (pkg / "b.py").write_text(f"from .{second} import g\n\ndef f():\n    return g()\n")
        fingerprint.clear_caches()
        codes.append(importlib.import_module("fp_imports.stages").s.code)
    assert codes[0] != codes[1]


def test_a_stage_follows_its_own_package_whatever_else_is_imported(tmp_path, monkeypatch):
    """A stage in package p calling a helper of package q (which also defines stages) gets one fingerprint,
    whether or not q's stages were imported first; q is followed only when named with track_package."""
    from cirkit.engine import code_names

    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(code_names, "_TRACKED", set(code_names._TRACKED))  # track_package below stays local
    import importlib

    for pkg, files in {
        "fp_order_q": {"helpers.py": "def f(x):\n    return x + 1\n",
                       "stages.py": "from cirkit.engine import stage\n\n@stage(version=1)\ndef t(config, x):\n    return x\n"},
        "fp_order_p": {"stages.py": "from cirkit.engine import stage\nfrom fp_order_q.helpers import f\n\n"
                                    "@stage(version=1)\ndef s(config, x):\n    return f(x)\n"},
    }.items():
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
        for name, text in files.items():
            (tmp_path / pkg / name).write_text(text)
    s = importlib.import_module("fp_order_p.stages").s
    fingerprint.clear_caches()
    alone = s.code
    importlib.import_module("fp_order_q.stages")
    fingerprint.clear_caches()
    assert s.code == alone
    fingerprint.track_package("fp_order_q")
    assert s.code != alone and "fp_order_q.helpers.f" in s.analysis.deps
    fingerprint.clear_caches()


CUSTOM_GRADIENT = """
import jax
from cirkit.engine import stage

@jax.custom_vjp
def clipped(x):
    return x

def forward(x):
    return x, None

def backward(_, g):
    return (jax.numpy.clip(g, -1.0, 1.0),)

clipped.defvjp(forward, backward)
register = {}
register.update(a=1)  # a call on a module-level dict: filed under it too, harmless

@stage(version=1)
def s(config, x):
    return jax.grad(lambda v: clipped(v).sum())(x)
"""


def test_a_custom_gradients_backward_attached_by_defvjp_is_in_the_key(tmp_path):
    """``f.defvjp(forward, backward)`` is a statement, not a definition: the stage reaches ``clipped`` and must
    reach its backward pass through it (a changed backward used to leave the key, and a cached result, as is)."""
    a = load_module(tmp_path, "fp_vjp_a", CUSTOM_GRADIENT).s
    b = load_module(tmp_path, "fp_vjp_b", CUSTOM_GRADIENT.replace("-1.0, 1.0", "-2.0, 2.0")).s
    assert {"fp_vjp_a.clipped", "fp_vjp_a.forward", "fp_vjp_a.backward"} <= set(a.analysis.deps)
    assert a.code != b.code


def test_the_cot_token_loss_keys_its_backward_pass():
    from cirkit.methods.cir_cot.caption_align import align_captioning

    assert "cirkit.methods.cir_cot.token_loss._backward" in align_captioning.analysis.deps
