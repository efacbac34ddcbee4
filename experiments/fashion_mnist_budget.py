"""Fashion-MNIST in about an hour on 2 CPU cores: the paper's CIFAR Attention-56 at half width.

The paper's CIFAR topology (``cifar_attention56``: 3x3 stem, one Attention Module per stage,
stages at 28, 14 and 7 pixels) at half its bottleneck widths, for 13 epochs of
``configs.fashion_mnist`` with half an epoch of warmup and an evaluation on all 10,000 test
images after every epoch. Mask pictures are left to ``python -m ran_jax.visualize`` to keep
the time for training.

Why these choices, the measured accuracy, wall time and the command: ``docs/fashion_mnist.md``.
"""

from ran_jax import configs

EPOCH = 60_000 // 128  # steps of batch 128 per epoch


def get_config():
    c = configs.fashion_mnist("cifar_attention56", epochs=13)
    c.model_overrides.widths = (8, 16, 32)
    c.warmup_steps = EPOCH // 2
    c.attention_images = 0
    c.eval_every_steps = EPOCH
    return c
