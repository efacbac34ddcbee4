"""Attention-92 on CIFAR-10 with 30% label noise (clean-label ratio r = 0.7);
paper: 5.79% error (paper 4.1, noisy labels)."""

from ran_jax import configs


def get_config():
    c = configs.cifar("cifar_attention92")
    c.label_noise = 0.3
    return c
