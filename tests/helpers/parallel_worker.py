"""Trains a tiny network 3 steps on 1 device and on all devices under pmap and shard_map.

Run in a fresh process with 8 fake CPU devices (training/test_train.py); prints one JSON line.
"""

import functools
import json

import jax
import ml_collections
import numpy as np

from ran_jax import configs
from ran_jax.models import get_model
from ran_jax.training.optimizer import learning_rate_fn
from ran_jax.training.parallel import AXIS, DataParallel
from ran_jax.training.state import create_train_state
from ran_jax.training.steps import train_step


def run(mode: str, devices: list, state0, batches, config) -> dict:
    dp = DataParallel(mode, devices)
    step = dp.compile(
        functools.partial(train_step, lr_fn=learning_rate_fn(config)),
        donate_state=False,
    )
    state, losses = dp.put_state(state0), []
    for batch in batches:
        state, metrics = step(state, dp.put_batch(batch))
        losses.append(float(metrics["train_loss"]))
    params = jax.tree_util.tree_leaves(jax.device_get(state.params))
    stats = jax.tree_util.tree_leaves(jax.device_get(state.batch_stats))
    return {
        "losses": losses,
        "params": [np.asarray(p).ravel().tolist() for p in params],
        "stats": [np.asarray(s).ravel().tolist() for s in stats],
    }


def main() -> None:
    config: ml_collections.ConfigDict = configs.base()
    config.batch_size = 16
    model = get_model("cifar_attention56", 10, widths=(4, 4, 4), modules=(1, 0, 0), axis_name=AXIS)
    state0 = create_train_state(config, model, (16, 16, 3))
    rng = np.random.default_rng(0)
    # One batch, three steps: the loss on it must fall.
    batch = {
        "image": rng.normal(size=(16, 16, 16, 3)).astype(np.float32),
        "label": rng.integers(0, 10, size=16).astype(np.int32),
    }
    batches = [batch] * 3
    results = {
        "devices": jax.device_count(),
        "single": run("pmap", jax.devices()[:1], state0, batches, config),
        "pmap": run("pmap", jax.devices(), state0, batches, config),
        "shard_map": run("shard_map", jax.devices(), state0, batches, config),
    }
    print(json.dumps(results))


if __name__ == "__main__":
    main()
