"""Quick start: a small attention network on cluttered digits, offline, a few minutes on a CPU.

The dataset is built locally from digits shipped with the package (ran_jax/data), so the
README's first command trains for real on a fresh machine without internet. The network is
Attention-56's topology at 1/8 width (``configs.quickstart``).
"""

from ran_jax import configs


def get_config():
    return configs.quickstart()
