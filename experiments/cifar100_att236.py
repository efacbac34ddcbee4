"""Attention-236 on CIFAR-100; paper: 21.16% error (docs/faithfulness.md §9)."""

from ran_jax import configs


def get_config():
    return configs.cifar("cifar_attention236", dataset="cifar100")
