"""Attention-92 on ImageNet; paper: 19.5/4.8 top-1/top-5 error, tested at 320 (paper Table 7).

Trains on 224x224 crops and evaluates at 320 (shorter side 366, centre crop 320), as the
paper tests it; global average pooling makes the network take either size."""

from ran_jax import configs


def get_config():
    c = configs.imagenet("attention92")
    c.eval_image_size = 320
    return c
