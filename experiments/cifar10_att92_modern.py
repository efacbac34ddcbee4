"""CIFAR-10 Attention-92 with the modern recipe of the best public ports, not the paper's
(``configs.cifar_modern``: 97.14% for the Gluon port's larger Attention-92)."""

from ran_jax import configs


def get_config():
    return configs.cifar_modern("cifar_attention92")
