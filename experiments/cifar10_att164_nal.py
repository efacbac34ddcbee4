"""Naive attention learning H = M * T, Attention-164 on CIFAR-10; paper: 7.18% error
(paper 4.1, ARL vs NAL)."""

from ran_jax import configs


def get_config():
    c = configs.cifar("cifar_attention164")
    c.model_overrides.attention = "naive"
    return c
