"""Attention-452 on CIFAR-100; paper: 20.45% error (docs/faithfulness.md §9)."""

from ran_jax import configs


def get_config():
    return configs.cifar("cifar_attention452", dataset="cifar100")
