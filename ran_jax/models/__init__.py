"""Residual Attention Network models (Wang et al., CVPR 2017) as Flax linen modules."""

from ran_jax.models.attention_module import AttentionModule
from ran_jax.models.mask import LocalMaskBranch, MaskTail, SoftMaskBranch
from ran_jax.models.network import ResidualAttentionNetwork, Stage
from ran_jax.models.registry import OVERRIDES, default_input, get_model, list_models
from ran_jax.models.residual_unit import PreActBottleneck, ResNeXtBottleneck
from ran_jax.models.trunk import TrunkBranch

__all__ = [
    "OVERRIDES",
    "AttentionModule",
    "LocalMaskBranch",
    "MaskTail",
    "PreActBottleneck",
    "ResNeXtBottleneck",
    "ResidualAttentionNetwork",
    "SoftMaskBranch",
    "Stage",
    "TrunkBranch",
    "default_input",
    "get_model",
    "list_models",
]
