"""Quick start: a small attention network on cluttered digits, offline, a few minutes on a CPU.

The dataset is built locally from digits shipped with the package (ran_jax/data), so the
README's first command trains for real on a fresh machine without internet.
"""

from ran_jax import configs


def get_config():
    c = configs.base()
    # Attention-56 topology (modules 1-1-1) at 1/8 width. Its stem (7x7/2 conv, 3x3/2 pool)
    # takes the 40x40 canvas to 10x10 before the first module: on 2 CPU cores full-resolution
    # stages run ~6x slower for tiny channel counts, which are memory-bound.
    c.model = "attention56"
    c.model_overrides.widths = (8, 16, 32, 32)  # bottlenecks; outputs 32/64/128/128 channels
    c.model_overrides.stem_width = 16
    c.dataset = "cluttered_digits"
    c.shuffle_buffer = 20_000
    c.batch_size = 64
    c.num_train_steps = 2_200
    c.lr_boundaries = (1_500, 1_900)
    c.warmup_steps = 100
    c.log_every_steps = 50
    c.eval_every_steps = 500
    c.checkpoint_every_steps = 500
    return c
