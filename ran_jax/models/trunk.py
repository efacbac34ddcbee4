"""Trunk branch T(x): ``t`` stacked Residual Units for feature processing (paper 3.1)."""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax.numpy as jnp


class TrunkBranch(nn.Module):
    """``T = RU^t(x)``; the units keep the input's shape."""

    num_units: int  # t
    unit: Callable[..., nn.Module]  # unit factory: unit(name=...) -> module

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        for i in range(self.num_units):
            x = self.unit(name=f"unit{i + 1}")(x)
        return x
