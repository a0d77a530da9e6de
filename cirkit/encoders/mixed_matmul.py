"""Matrix products with bfloat16 operands and float32 results, forward and backward (mixed-precision training).

Why: on a CPU with AVX512-BF16 (the development machine's EPYC), XLA multiplies bfloat16 matrices into a float32
result about 1.8-2x as fast as float32 ones (``bench/train_bench.py`` prints both), while a bfloat16 *result* is
slower than float32. Plain ``einsum`` on bfloat16 casts gets only the forward product: JAX's transpose rule
multiplies the float32 cotangent with the operands cast back up, so the backward products (two thirds of a
training step's) stay float32. Here the backward products are bfloat16 too, with float32 results, the scheme
of mixed-precision training: parameters, activations, norms, softmax and the optimiser stay float32; only the
operands of the products are rounded to bfloat16's 8-bit mantissa.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["MATMUL_DTYPES", "einsum", "dense_dot_general"]

MATMUL_DTYPES = ("float32", "bfloat16")
_BF16, _F32 = jnp.bfloat16, jnp.float32


def _check(matmul: str) -> None:
    if matmul not in MATMUL_DTYPES:
        raise ValueError(f"matmul: expected one of {', '.join(MATMUL_DTYPES)}, found {matmul!r}")


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _bf16_einsum(equation: str, a, b):
    return jnp.einsum(equation, a.astype(_BF16), b.astype(_BF16), preferred_element_type=_F32)


def _forward(equation: str, a, b):
    a16, b16 = a.astype(_BF16), b.astype(_BF16)
    return jnp.einsum(equation, a16, b16, preferred_element_type=_F32), (a16, b16)


def _backward(equation: str, residuals, g):
    """The cotangents of both operands, each a product of the other with the (bfloat16) output cotangent.
    Needs every index of an operand to appear in the other operand or in the output (true of every product
    the CLIP towers take: no index is summed within one operand)."""
    a16, b16 = residuals
    inputs, out = equation.split("->")
    a, b = inputs.split(",")
    g16 = g.astype(_BF16)
    return (jnp.einsum(f"{out},{b}->{a}", g16, b16, preferred_element_type=_F32),
            jnp.einsum(f"{a},{out}->{b}", a16, g16, preferred_element_type=_F32))


_bf16_einsum.defvjp(_forward, _backward)


def einsum(equation: str, a, b, matmul: str = "float32", dtype=None):
    """``jnp.einsum(equation, a, b)`` in ``dtype`` (the module's compute dtype); with ``matmul="bfloat16"``,
    the operands are rounded to bfloat16 and the result (and the gradients) come back in float32."""
    _check(matmul)
    if matmul == "bfloat16":
        return _bf16_einsum(equation, a.astype(_F32), b.astype(_F32))
    if dtype is not None:
        a, b = a.astype(dtype), b.astype(dtype)
    return jnp.einsum(equation, a, b)


def dense_dot_general(matmul: str):
    """A ``dot_general`` for ``flax.linen.Dense`` (None: Flax's own): inputs (..., in) times kernel (in, out)."""
    _check(matmul)
    if matmul != "bfloat16":
        return None

    def dot_general(inputs, kernel, dimension_numbers, precision=None, preferred_element_type=None):
        (contract_in, contract_kernel), batch = dimension_numbers
        if tuple(contract_in) != (inputs.ndim - 1,) or tuple(contract_kernel) != (0,) or any(batch) or kernel.ndim != 2:
            return lax.dot_general(inputs, kernel, dimension_numbers, precision=precision,
                                   preferred_element_type=preferred_element_type)
        return _bf16_einsum("...i,io->...o", inputs.astype(_F32), kernel.astype(_F32))

    return dot_general
