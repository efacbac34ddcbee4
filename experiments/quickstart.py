"""Quick start: a small attention network on cluttered digits, offline, a few minutes on a CPU.

The dataset is built locally from digits shipped with the package (ran_jax/data), so the
README's first command trains for real on a fresh machine without internet.
"""

from ran_jax import configs


def get_config():
    c = configs.base()
    c.model = "cifar_attention56"
    c.model_overrides.widths = (8, 16, 16)  # bottlenecks; outputs 32/64/64 channels
    c.dataset = "cluttered_digits"
    c.shuffle_buffer = 20_000
    c.batch_size = 64
    c.num_train_steps = 1_500
    c.lr_boundaries = (1_000, 1_300)
    c.warmup_steps = 100
    c.log_every_steps = 50
    c.eval_every_steps = 500
    c.checkpoint_every_steps = 500
    return c
