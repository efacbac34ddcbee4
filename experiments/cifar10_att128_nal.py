"""Naive attention learning H = M * T, Attention-128 on CIFAR-10; paper: 5.57% error
(paper 4.1, ARL vs NAL)."""

from ran_jax import configs


def get_config():
    c = configs.cifar("cifar_attention128")
    c.model_overrides.attention = "naive"
    return c
