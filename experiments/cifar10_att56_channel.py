"""Channel attention, Attention-56 on CIFAR-10; paper: 6.24% error (paper 4.1)."""

from ran_jax import configs


def get_config():
    c = configs.cifar("cifar_attention56")
    c.model_overrides.mask_activation = "channel"
    return c
