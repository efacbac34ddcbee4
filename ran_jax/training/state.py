"""The train state and what a run is built from: model, data description, parallel runner.

``create_train_state`` initialises the network (He init, fixed by ``config.seed``) and its
optimizer (``optimizer.py``); ``build`` checks the config (``config_check.py``) and makes the
model for the data set before anything is written.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from flax.training import train_state

from ran_jax.training.optimizer import make_optimizer


class TrainState(train_state.TrainState):
    batch_stats: Any
    nonfinite_steps: jax.Array  # steps whose loss or gradient was not finite
    first_nonfinite_step: jax.Array  # the first such step; 0 while there is none
    ema: Any = None  # {'params', 'batch_stats'} averaged over steps when config.ema_decay > 0


def create_train_state(
    config: ml_collections.ConfigDict, model: Any, image_shape: tuple[int, ...]
) -> TrainState:
    """Initialises parameters (He init, fixed by ``config.seed``) and the optimizer."""
    variables = _init(model)(jax.random.key(config.seed), jnp.zeros((1, *image_shape), jnp.float32))
    ema = None
    if config.ema_decay:  # a copy: the step donates the state, and no buffer twice
        ema = jax.tree_util.tree_map(jnp.copy, dict(variables))
    state = TrainState.create(
        apply_fn=model.apply,
        params=variables["params"],
        batch_stats=variables["batch_stats"],
        tx=make_optimizer(config),
        nonfinite_steps=jnp.zeros((), jnp.int32),
        first_nonfinite_step=jnp.zeros((), jnp.int32),
        ema=ema,
    )
    # create() starts at the Python int 0, a weakly typed int32 to JAX, while the step returns
    # a strong int32: a new run would compile its train step twice (steps 1 and 2).
    return state.replace(step=jnp.zeros((), jnp.int32))


@functools.lru_cache(maxsize=8)
def _init(model: Any) -> Any:
    """``model.init``, compiled once per network and input shape in this process: runs of
    one network (a study's seeds, a resumed run's fresh state) trace and compile it once."""
    return jax.jit(model.init)
