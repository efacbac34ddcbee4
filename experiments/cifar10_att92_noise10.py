"""Attention-92 on CIFAR-10 with 10% label noise (clean-label ratio r = 0.9);
paper: 5.15% error (paper 4.1, noisy labels)."""

from ran_jax import configs


def get_config():
    c = configs.cifar("cifar_attention92")
    c.label_noise = 0.1
    return c
