"""The towers' attention layouts: the per-head layout the pooled path uses is the same map as the default."""

import jax
import jax.numpy as jnp
import numpy as np

from cirkit.encoders.clip_config import TowerConfig
from cirkit.encoders.clip_model import Attention

CFG = TowerConfig(
    hidden_size=32,
    intermediate_size=64,
    num_attention_heads=4,
    num_hidden_layers=1,
    hidden_act="quick_gelu",
    layer_norm_eps=1e-5,
)


def test_head_major_attention_has_the_same_parameters_and_outputs():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((3, 7, 32)), jnp.float32)
    causal = jnp.where(jnp.tril(jnp.ones((7, 7), bool)), 0.0, -jnp.inf)[None, None]
    default, per_head = Attention(CFG, jnp.float32), Attention(CFG, jnp.float32, heads_major=True)
    params = default.init(jax.random.PRNGKey(1), x, causal)["params"]
    same_init = per_head.init(jax.random.PRNGKey(1), x, causal)["params"]
    assert jax.tree_util.tree_structure(same_init) == jax.tree_util.tree_structure(params)
    assert all(
        np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(same_init), jax.tree_util.tree_leaves(params))
    )
    # random biases too (init leaves them zero), so a bias added to the wrong head or position shows
    params = jax.tree_util.tree_map(lambda p: jnp.asarray(rng.standard_normal(p.shape), jnp.float32) * 0.3, params)
    for bias, queries in ((causal, None), (None, None), (causal[:, :, 2:3], x[:, 2:3])):
        expected = default.apply({"params": params}, x, bias, queries)
        got = per_head.apply({"params": params}, x, bias, queries)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
