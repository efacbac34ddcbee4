"""Naive attention learning H = M * T, Attention-56 on CIFAR-10; paper: 5.89% error
(paper 4.1, ARL vs NAL)."""

from ran_jax import configs


def get_config():
    c = configs.cifar("cifar_attention56")
    c.model_overrides.attention = "naive"
    return c
