"""Runs of ``python -m ran_jax.main`` on a tiny config, started, signalled and waited for as
a user's would be (the reliability and fault tests)."""

import json
import os
import runpy
import subprocess
import sys
import time
from pathlib import Path

from helpers import ROOT, TINY

# Long enough for five interrupted starts in a row (test_reliability.py), each a few steps.
STEPS, EVERY = 30, 10
EVAL_EXAMPLES = 64  # the evaluations stay on, on a slice of the test split

CONFIG = """
from ran_jax import configs


def get_config():
    c = configs.base()
    c.dataset, c.data_dir = "cluttered_digits", {data_dir!r}
    c.model_overrides.update({tiny!r})
    c.batch_size = 16
    c.shuffle_buffer = 256
    c.num_train_steps = {steps}
    c.lr_boundaries = ({boundary},)
    c.log_every_steps = 1
    c.eval_every_steps = 1000
    c.eval_examples = {eval_examples}
    c.checkpoint_every_steps = {every}
    c.attention_images = 0  # mask pictures cost a compile per start; test_main.py checks them
    return c
"""


def command_env() -> dict:
    """The environment of the runs: this checkout first, CPU only, conftest's XLA cache."""
    return dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")


def start(setup, workdir, *extra, env=None, stderr=subprocess.PIPE):
    cmd = [
        sys.executable,
        "-m",
        "ran_jax.main",
        f"--config={setup['config']}",
        f"--workdir={workdir}",
        *extra,
    ]
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=env or command_env(),
        cwd=ROOT,
    )


def run(setup, workdir, *extra, env=None):
    proc = start(setup, workdir, *extra, env=env)
    out, err = proc.communicate(timeout=600)
    return proc.returncode, err


def steps(workdir):
    path = os.path.join(workdir, "checkpoints")
    return sorted(int(d) for d in os.listdir(path) if d.isdigit()) if os.path.isdir(path) else []


def logged_step(workdir):
    """The last step in metrics.jsonl (written and flushed at every step), or 0."""
    try:
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return 0
    for line in reversed(lines):
        try:
            return json.loads(line)["step"]
        except (ValueError, KeyError):  # a line being written
            continue
    return 0


def wait_for_first_checkpoint(proc, workdir, step=0):
    """Waits until the first checkpoint exists and step ``step`` has been logged.

    Waiting for a step rather than sleeping leaves the run at least STEPS - step steps to
    go when it is signalled, however fast the machine is.
    """
    while not steps(workdir) or logged_step(workdir) < step:
        assert proc.poll() is None, f"the run ended before its first checkpoint or step {step}"
        time.sleep(0.02)


def load_config(setup):
    """The config of ``write_setup``'s file, for the runs a test makes in its own process."""
    return runpy.run_path(setup["config"])["get_config"]()


def write_setup(base: Path, data_dir: str) -> dict:
    """A tiny config file in ``base`` reading cluttered digits from ``data_dir``."""
    config_path = base / "tiny.py"
    config_path.write_text(
        CONFIG.format(
            data_dir=data_dir,
            tiny=TINY,
            steps=STEPS,
            every=EVERY,
            boundary=STEPS // 2,
            eval_examples=EVAL_EXAMPLES,
        )
    )
    return {"base": base, "data_dir": data_dir, "config": str(config_path)}
