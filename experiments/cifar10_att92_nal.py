"""Naive attention learning H = M * T, Attention-92 on CIFAR-10; paper: 5.35% error
(paper 4.1, ARL vs NAL)."""

from ran_jax import configs


def get_config():
    c = configs.cifar("cifar_attention92")
    c.model_overrides.attention = "naive"
    return c
