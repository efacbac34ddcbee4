"""One process of the multi-process test (training/test_multiprocess.py); writes one JSON file.

    multiprocess_worker.py DATA_DIR WORKDIR OUT PARALLELISM [COORDINATOR PROCESS_ID]

With COORDINATOR it is one of 2 processes (``jax.distributed``, as ``main.py`` does), reading
its own half of each global batch. Without, it is the 1-process reference, which reads both
halves itself. Either way it trains with ``loop.train_and_evaluate``, then restores the
checkpoint that run wrote into a fresh state. Evaluation runs on the first 8 test examples
(one batch, 2 per device) to save time.
"""

import json
import os
import sys
from unittest import mock

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from helpers import TINY
from ran_jax import configs
from ran_jax.data import input_pipeline
from ran_jax.training import checkpointing, loop
from ran_jax.training.model import build
from ran_jax.training.parallel import to_host
from ran_jax.training.state import create_train_state

STEPS = 2  # the second step runs the state the first returned, as every later one


def config(data_dir: str, parallelism: str):
    c = configs.base()
    c.dataset, c.data_dir = "cluttered_digits", data_dir
    c.model_overrides.update(TINY)
    c.batch_size = 8  # global: 2 examples per device on 4 devices
    c.shuffle_buffer = 64
    c.num_train_steps = STEPS
    c.log_every_steps = 1
    c.checkpoint_every_steps = 1000  # one checkpoint, at the last step
    c.eval_examples = 8  # the evaluation at the last step: one global batch
    c.parallelism = parallelism
    return c


def both_halves(train_batches):
    """The global batches of a 2-process run, read in one process."""

    def read(data, start_step=0):
        halves = []
        for i in range(2):  # the stream reads its process when it is made
            with mock.patch.object(input_pipeline, "_this_process", lambda i=i: (i, 2)):
                halves.append(train_batches(data, start_step))
        for a, b in zip(*halves):
            yield {k: np.concatenate([a[k], b[k]]) for k in a}

    return read


def leaves(state) -> dict:
    flat = jax.tree_util.tree_flatten_with_path(to_host(state))[0]
    return {jax.tree_util.keystr(p): np.asarray(v).ravel().tolist() for p, v in flat}


def types(state) -> list:
    return [(t.shape, t.dtype, t.weak_type) for t in map(jax.typeof, jax.tree.leaves(state))]


def main(data_dir: str, workdir: str, out: str, parallelism: str, *distributed: str) -> None:
    if distributed:
        jax.distributed.initialize(distributed[0], num_processes=2, process_id=int(distributed[1]))
    else:
        input_pipeline.DataSet.train_batches = both_halves(input_pipeline.DataSet.train_batches)

    c = config(data_dir, parallelism)
    data = input_pipeline.DataSet(c)
    trained = loop.train_and_evaluate(c, workdir, data)

    model, info, dp = build(c, data)
    shape = (info.image_size, info.image_size, info.num_channels)
    fresh = dp.put_state(create_train_state(c, model, shape))
    meta = checkpointing.checkpoint_meta(c, info.num_classes, shape, fresh.params)
    initial = leaves(fresh)
    # The state the step returned has the types of a new one, or the step compiled again.
    types_kept = types(trained) == types(fresh)
    with checkpointing.manager(workdir, c.keep_checkpoints) as mngr:
        restored, step = checkpointing.restore_latest(mngr, workdir, fresh, meta)
    with open(out, "w") as f:
        json.dump(
            {
                "processes": jax.process_count(),
                "devices": jax.device_count(),
                "step": step,
                "types_kept": types_kept,
                "initial": initial,
                "trained": leaves(trained),
                "restored": leaves(restored),
            },
            f,
        )
    if distributed:
        jax.distributed.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:])
