"""CIFAR-10 Attention-92 with the modern recipe, not the paper's (``configs.cifar_modern``;
docs/training.md, "The modern CIFAR recipe")."""

from ran_jax import configs


def get_config():
    return configs.cifar_modern("cifar_attention92")
