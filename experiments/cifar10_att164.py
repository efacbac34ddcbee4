"""Attention-164 (m=4) on CIFAR-10 with ARL; paper: 4.31% error (docs/faithfulness.md §9)."""

from ran_jax import configs


def get_config():
    return configs.cifar("cifar_attention164")
