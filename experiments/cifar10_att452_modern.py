"""CIFAR-10 Attention-452 (p, t, r = 2, 4, 3) with the modern recipe (``configs.cifar_modern``;
docs/training.md, "The modern CIFAR recipe"), plus an EMA of the weights, evaluated beside
them."""

from ran_jax import configs


def get_config():
    c = configs.cifar_modern("cifar_attention452")
    c.ema_decay = 0.9999
    return c
