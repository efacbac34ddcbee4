"""The tiny run of tests/testdata/run_v0_1_0, written by ran_jax at commit 1277bc0."""

from ran_jax import configs


def get_config(data_dir=None):
    """The config that trained this run (4 steps); pass --config=config.py:DATA_DIR."""
    c = configs.base()
    c.dataset, c.data_dir = "cluttered_digits", data_dir
    c.model_overrides.widths = (2, 2, 2)
    c.model_overrides.modules = (1, 0, 0)
    c.batch_size = 16
    c.shuffle_buffer = 256
    c.num_train_steps = 4
    c.lr_boundaries = (100,)
    c.log_every_steps = 1
    c.eval_every_steps = 2
    c.eval_examples = 32
    c.checkpoint_every_steps = 2
    c.attention_images = 0
    return c
