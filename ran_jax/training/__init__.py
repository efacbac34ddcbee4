"""The training layer: state, steps, loop, parallelism, checkpoints, metrics (paper section 4)."""
