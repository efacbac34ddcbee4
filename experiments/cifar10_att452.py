"""Attention-452 (m=6, p,t,r = 2,4,3) on CIFAR-10 with ARL; paper: 3.90% error
(docs/faithfulness.md §9)."""

from ran_jax import configs


def get_config():
    return configs.cifar("cifar_attention452")
