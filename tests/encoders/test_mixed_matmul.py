"""Mixed-precision products: bfloat16 operands, float32 results, in the forward pass and in both backward
products, for every einsum form the CLIP towers use; a CLIP tower with them stays near its float32 self."""

from __future__ import annotations

import re
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from cirkit.encoders.clip_config import ClipConfig, TowerConfig
from cirkit.encoders.clip_model import ClipText, ClipVision
from cirkit.encoders.mixed_matmul import einsum
from cirkit.training.clip_trainer import ClipSpec, ClipTask, TrainConfig, build_clip

FORMS = [("...i,io->...o", (2, 5, 8), (8, 3)), ("btd,dhk->bhtk", (2, 5, 8), (8, 2, 4)),
         ("bhqd,bhkd->bhqk", (2, 3, 5, 4), (2, 3, 6, 4)), ("bhqk,bhkd->bhqd", (2, 3, 5, 6), (2, 3, 6, 4)),
         ("bhtk,hkf->btf", (2, 3, 5, 4), (3, 4, 7)), ("bnk,dk->bnd", (2, 5, 12), (6, 12))]


def rounded(x):
    return x.astype(jnp.bfloat16).astype(jnp.float32)


@pytest.mark.parametrize("equation,shape_a,shape_b", FORMS)
def test_forward_and_gradients_are_exact_products_of_bfloat16_roundings(equation, shape_a, shape_b):
    rng = np.random.default_rng(0)
    a, b = (jnp.asarray(rng.standard_normal(s), jnp.float32) for s in (shape_a, shape_b))
    weights = jnp.asarray(rng.standard_normal(jnp.einsum(equation, a, b).shape), jnp.float32)
    out = einsum(equation, a, b, "bfloat16")
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, jnp.einsum(equation, rounded(a), rounded(b)), rtol=1e-6, atol=1e-6)
    grads = jax.grad(lambda a, b: (einsum(equation, a, b, "bfloat16") * weights).sum(), (0, 1))(a, b)
    # the reference: float32 products of the rounded operands and the rounded output cotangent (a backward
    # pass in float32, JAX's default for a cast einsum, misses it by ~1e-3 of the values)
    expected = jax.grad(lambda a, b: (jnp.einsum(equation, a, b) * rounded(weights)).sum(), (0, 1))(rounded(a),
                                                                                                       rounded(b))
    for got, want in zip(grads, expected, strict=True):
        assert got.dtype == jnp.float32
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_float32_is_plain_einsum_in_the_given_dtype():
    a, b = jnp.ones((2, 3)) / 3, jnp.ones((3, 4)) / 7
    np.testing.assert_array_equal(einsum("ij,jk->ik", a, b), jnp.einsum("ij,jk->ik", a, b))
    assert einsum("ij,jk->ik", a, b, dtype=jnp.bfloat16).dtype == jnp.bfloat16


def tiny_clip() -> ClipConfig:
    tower = dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2,
                 hidden_act="quick_gelu", layer_norm_eps=1e-5)
    return ClipConfig(TowerConfig(**tower, vocab_size=50, max_position_embeddings=8, eos_token_id=49),
                      TowerConfig(**tower, image_size=16, patch_size=8), 16)


def test_a_training_step_multiplies_only_bfloat16_operands_and_stays_near_float32():
    config, rng = tiny_clip(), np.random.default_rng(1)
    ids = jnp.asarray(np.concatenate([rng.integers(0, 49, (4, 7)), np.full((4, 1), 49)], 1), jnp.int32)
    pixels = jnp.asarray(rng.standard_normal((4, 3, 16, 16)), jnp.float32)
    # jitted: an eager init compiles every operation on its own and JAX keeps each program (~300 MB for these towers)
    text = jax.jit(ClipText(config).init)(jax.random.PRNGKey(0), ids)["params"]
    vision = jax.jit(ClipVision(config).init)(jax.random.PRNGKey(1), pixels)["params"]

    def loss(params, matmul):
        t = ClipText(config, matmul=matmul).apply({"params": params[0]}, ids)
        v = ClipVision(config, matmul=matmul).apply({"params": params[1]}, pixels)
        return (t * v).sum(), (t, v)

    step = jax.jit(jax.grad(loss, has_aux=True), static_argnums=1)
    hlo = step.lower((text, vision), "bfloat16").as_text()
    # every product of the towers (forward and backward) takes bfloat16 operands; the two projections to the
    # embedding (float32 by design: they are small and set the embedding's scale) are the only float32 ones
    operands = re.findall(r"stablehlo\.dot_general[^:]*: \(tensor<[^>]*x(\w+)>, tensor<[^>]*x(\w+)>\)", hlo)
    assert len(operands) > 20
    assert sum(a == b == "bf16" for a, b in operands) >= len(operands) - 6, operands
    (g16, (t16, v16)), (g32, (t32, v32)) = step((text, vision), "bfloat16"), step((text, vision), "float32")
    for half, full in ((t16, t32), (v16, v32)):
        assert 0 < float(jnp.abs(half - full).max()) < 0.05 * float(jnp.abs(full).max())
    # against the largest gradient, not each leaf's: some are zero in exact arithmetic (the key projection's
    # bias cannot change a softmax), so float32 leaves rounding noise there and bfloat16 a larger one
    scale = max(float(jnp.abs(g).max()) for g in jax.tree.leaves(g32))
    for half, full in zip(jax.tree.leaves(g16), jax.tree.leaves(g32), strict=True):
        assert half.dtype == jnp.float32 and half.shape == full.shape
        assert float(jnp.abs(half - full).max()) <= 0.02 * scale


def test_an_unknown_matmul_dtype_is_refused_by_name():
    with pytest.raises(ValueError, match=r"matmul.*bfloat16.*float16"):
        TrainConfig(matmul="float16")
    with pytest.raises(ValueError, match=r"matmul.*bf16"):  # the training stage's own task config
        ClipSpec(matmul="bf16")
    with pytest.raises(ValueError, match=r"matmul.*bf16"):  # and the modules: a typo never trains in float32
        einsum("ij,jk->ik", jnp.ones((2, 2)), jnp.ones((2, 2)), "bf16")


def bfloat16_products(task: ClipTask, batch: dict) -> tuple[int, int]:
    """(bfloat16 x bfloat16 products, all products) in the lowered gradient of ``task``'s loss."""
    params = jax.eval_shape(task.init, jax.random.PRNGKey(0))  # lowering needs shapes only
    hlo = jax.jit(jax.grad(lambda p: task.loss(p, batch, None)[0])).lower(params).as_text()
    operands = re.findall(r"stablehlo\.dot_general[^:]*: \(tensor<[^>]*x(\w+)>, tensor<[^>]*x(\w+)>\)", hlo)
    return sum(a == b == "bf16" for a, b in operands), len(operands)


def test_the_demo_trains_its_clip_in_mixed_precision_and_the_methods_worlds_in_float32(tmp_path):
    """From the experiment file through the training stage's task config to the products of the loss: a field
    dropped on the way would train the demo in float32 under the methods' worlds' key."""
    from cirkit.experiment.experiment import load_experiment
    from cirkit.pipelines.setup import Setup

    demo = load_experiment("experiments/demo.toml").runs[0].config
    partial = tmp_path / "demo.toml"
    partial.write_text('pipeline = "demo"\n[train]\nsteps = 10\n')  # a partial table keeps the demo's defaults
    for config in (demo.train, load_experiment(str(partial)).runs[0].config.train):
        assert config.matmul == "bfloat16" and config.spec().matmul == "bfloat16"
    assert Setup().train.spec().matmul == "float32" and Setup().train.spec() != demo.train.spec()
    rng = np.random.default_rng(0)
    paths = []
    for i in range(4):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(paths[-1])
    split = SimpleNamespace(gallery=SimpleNamespace(images=[SimpleNamespace(id=str(i), path=p) for i, p in
                                                            enumerate(paths)]),
                            truths=[SimpleNamespace(target=str(i)) for i in range(4)],
                            queries=[SimpleNamespace(text=f"a red circle number {i}") for i in range(4)])
    small = dict(width=32, layers=1, patch_size=16, projection_dim=16)
    for matmul, share in (("bfloat16", 0.8), ("float32", 0.0)):
        task, data = build_clip(ClipSpec(**small, matmul=matmul), split)
        assert task.matmul == matmul
        half, total = bfloat16_products(task, task.prepare(data.batch(np.arange(4))))
        assert total > 10 and (half >= share * total if share else half == 0), (matmul, half, total)
