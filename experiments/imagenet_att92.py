"""Attention-92 on ImageNet; paper: 19.5/4.8 top-1/top-5 error, tested at 320 (spec 6).

Trains and evaluates at 224 here; evaluate at 320 with --config.image_size=320."""

from ran_jax import configs


def get_config():
    return configs.imagenet("attention92")
