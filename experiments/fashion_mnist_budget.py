"""Fashion-MNIST in about an hour on 2 CPU cores: the paper's CIFAR Attention-56 at half width.

The network keeps the paper's CIFAR topology (``cifar_attention56``: 3x3 stem, one Attention
Module per stage, stages at 28, 14 and 7 pixels, the soft mask's bottom-up top-down path
spanning them) at half its bottleneck widths (8/16/32, outputs 32/64/128 channels; 262,330
parameters), which trains more than twice as fast as full width on 2 CPU cores, so 11 epochs
fit in about the hour where full width gets 5. The recipe is the usual short one for small
images: batch 128, Nesterov SGD at lr 0.1, half an epoch of warmup then cosine decay to
zero, weight decay 5e-4 on convolution and dense kernels, label smoothing 0.1; CIFAR's
pad-and-crop with flips; evaluation on all 10,000 test images after every epoch. Mask
pictures are left to ``python -m ran_jax.visualize`` to keep the time for training.

Measured speeds, accuracy, wall time and the command: ``docs/fashion_mnist.md``.
"""

from ran_jax import configs

EPOCH = 60_000 // 128  # steps of batch 128 per epoch


def get_config():
    c = configs.cifar("cifar_attention56", dataset="fashion_mnist")
    c.model_overrides.widths = (8, 16, 32)
    c.batch_size = 128
    c.learning_rate, c.base_batch_size, c.scale_lr_with_batch = 0.1, 128, True
    c.num_train_steps = 11 * EPOCH
    c.lr_schedule = "cosine"
    c.warmup_steps = EPOCH // 2
    c.weight_decay = 5e-4
    c.decay_norm_and_bias = False
    c.label_smoothing = 0.1
    c.shuffle_buffer = 60_000
    c.attention_images = 0
    c.log_every_steps = 100
    c.eval_every_steps = EPOCH
    c.checkpoint_every_steps = EPOCH
    return c
