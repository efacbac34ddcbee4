"""Attention-92 (m=2, modules 2-2-2) on CIFAR-10 with ARL; paper: 4.99% error
(docs/faithfulness.md §9)."""

from ran_jax import configs


def get_config():
    return configs.cifar("cifar_attention92")
