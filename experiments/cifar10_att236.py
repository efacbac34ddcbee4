"""Attention-236 (m=6) on CIFAR-10 with ARL; paper: 4.14% error (docs/faithfulness.md §9)."""

from ran_jax import configs


def get_config():
    return configs.cifar("cifar_attention236")
