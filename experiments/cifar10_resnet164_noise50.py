"""Pre-activation ResNet-164 baseline on CIFAR-10 with 50% label noise;
paper: 8.35% error (paper 4.1, noisy labels)."""

from ran_jax import configs


def get_config():
    c = configs.cifar("preact_resnet164")
    c.label_noise = 0.5
    return c
