"""Local-convolution mask instead of the encoder-decoder soft mask, Attention-56 on CIFAR-10
(paper 4.1; mask structure ablation)."""

from ran_jax import configs


def get_config():
    c = configs.cifar("cifar_attention56")
    c.model_overrides.mask_type = "local"
    return c
