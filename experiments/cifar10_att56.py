"""Attention-56 (m=1) on CIFAR-10 with ARL; paper: 5.52% error (docs/faithfulness.md §9)."""

from ran_jax import configs


def get_config():
    return configs.cifar("cifar_attention56")
