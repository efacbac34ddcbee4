"""Attention Module: trunk and soft mask fused by attention residual learning (paper 3.1).

Dataflow of the official deploy files (``docs/faithfulness.md`` §3.2): ``p`` pre-processing
units, then the trunk ``T = RU^t`` and the mask ``M`` both read the same features, fused as
``H = (1 + M) * T`` (attention residual learning, ARL) or ``H = M * T`` (naive attention
learning, NAL, the ablation of paper 4.1), then ``p`` post-processing units.

The mask ``M`` is recorded with ``sow('intermediates', 'mask', M)``; read it back with
``model.apply(..., mutable=['intermediates'])``.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax.numpy as jnp

from ran_jax.models.mask import LocalMaskBranch, SoftMaskBranch
from ran_jax.models.trunk import TrunkBranch

ATTENTION_LEARNING = ("residual", "naive")


class AttentionModule(nn.Module):
    """One Attention Module with hyper-parameters p, t, r (paper default 1, 2, 1)."""

    pool_levels: int  # L, max-pooling levels of the soft mask
    unit: Callable[..., nn.Module]
    tail: Callable[..., nn.Module]
    p: int = 1
    t: int = 2
    r: int = 1
    attention: str = "residual"  # 'residual' (ARL) or 'naive' (NAL)
    mask_type: str = "soft"  # 'soft' or 'local'

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        for i in range(self.p):
            x = self.unit(name=f"pre{i + 1}")(x)
        trunk = TrunkBranch(self.t, self.unit, name="trunk_branch")(x)
        mask_cls = SoftMaskBranch if self.mask_type == "soft" else LocalMaskBranch
        mask = mask_cls(self.pool_levels, self.r, self.unit, self.tail, name="mask_branch")(x)
        self.sow("intermediates", "mask", mask)
        h = (1 + mask) * trunk if self.attention == "residual" else mask * trunk
        for i in range(self.p):
            h = self.unit(name=f"post{i + 1}")(h)
        return h
