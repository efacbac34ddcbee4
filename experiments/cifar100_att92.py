"""Attention-92 on CIFAR-100; paper: 21.71% error (docs/faithfulness.md §9)."""

from ran_jax import configs


def get_config():
    return configs.cifar("cifar_attention92", dataset="cifar100")
