"""Fashion-MNIST in about an hour on 2 CPU cores: the paper's CIFAR Attention-56 at half width.

The network keeps the paper's CIFAR topology (``cifar_attention56``: 3x3 stem, one Attention
Module per stage, stages at 28, 14 and 7 pixels, the soft mask's bottom-up top-down path
spanning them) at half its bottleneck widths (8/16/32, outputs 32/64/128 channels; 262,330
parameters), which trains more than twice as fast as full width on 2 CPU cores, so 11 epochs
fit in about the hour where full width gets 5. The recipe is ``configs.fashion_mnist``, with
half an epoch of warmup and an evaluation on all 10,000 test images after every epoch. Mask
pictures are left to ``python -m ran_jax.visualize`` to keep the time for training.

Measured speeds, accuracy, wall time and the command: ``docs/fashion_mnist.md``.
"""

from ran_jax import configs

EPOCH = 60_000 // 128  # steps of batch 128 per epoch


def get_config():
    c = configs.fashion_mnist("cifar_attention56", epochs=11)
    c.model_overrides.widths = (8, 16, 32)
    c.warmup_steps = EPOCH // 2
    c.attention_images = 0
    c.eval_every_steps = EPOCH
    return c
