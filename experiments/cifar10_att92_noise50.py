"""Attention-92 on CIFAR-10 with 50% label noise (clean-label ratio r = 0.5);
paper: 7.27% error (paper 4.1, noisy labels)."""

from ran_jax import configs


def get_config():
    c = configs.cifar("cifar_attention92")
    c.label_noise = 0.5
    return c
