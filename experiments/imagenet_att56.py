"""Attention-56 on ImageNet at 224; paper: 21.76/5.9 top-1/top-5 error (docs/faithfulness.md §9)."""

from ran_jax import configs


def get_config():
    return configs.imagenet("attention56")
