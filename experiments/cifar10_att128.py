"""Attention-128 (m=3) on CIFAR-10 with ARL; paper: 4.44% error (docs/faithfulness.md §9)."""

from ran_jax import configs


def get_config():
    return configs.cifar("cifar_attention128")
