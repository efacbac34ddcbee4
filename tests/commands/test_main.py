"""End to end: train, stop, re-run resumes; missing data and bad settings fail before writing."""

import json
import os

import pytest
import tensorflow as tf

from helpers import TINY, commands
from ran_jax import configs
from ran_jax.analysis.pictures import AttentionPictures
from ran_jax.data import input_pipeline
from ran_jax.training import loop

pytestmark = pytest.mark.slow  # end to end: training runs and the command in subprocesses


@pytest.fixture(scope="module")
def digits_dir(cluttered_digits_dir):
    """The offline cluttered-digits data set, prepared once per test session (conftest.py)."""
    return cluttered_digits_dir


def _tiny_config(data_dir):
    c = configs.base()
    c.dataset, c.data_dir = "cluttered_digits", data_dir
    c.model_overrides.update(TINY)
    c.batch_size = 32
    c.shuffle_buffer = 64
    c.num_train_steps = 3
    c.log_every_steps = 1
    c.eval_every_steps = 3
    c.checkpoint_every_steps = 2
    c.keep_checkpoints = 2
    c.eval_examples = 64  # evaluation is checked for shape and range, not accuracy
    return c


def _metric_lines(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_stopping_and_rerunning_continues_from_the_checkpoint(tmp_path, digits_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    workdir = "run"  # relative, as users type it (orbax itself needs absolute paths)
    config = _tiny_config(digits_dir)
    data = input_pipeline.DataSet(config)
    pictures = [AttentionPictures(data, config.attention_images)]  # as main.py passes them
    loop.train_and_evaluate(config, workdir, data, pictures)
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "3"]
    config.num_train_steps = 5  # the same run, continued to a later step
    state = loop.train_and_evaluate(config, workdir, input_pipeline.DataSet(config), pictures)
    assert int(state.step) == 5
    lines = _metric_lines(workdir)
    train_steps = [m["step"] for m in lines if "train_loss" in m]
    assert train_steps == [1, 2, 3, 4, 5]  # steps 1-3 were not trained again
    for m in lines:
        if "train_loss" in m:
            assert {"train_loss", "train_accuracy", "learning_rate", "images_per_second"} <= set(m)
    evals = [m for m in lines if "eval_top1" in m]
    assert [m["step"] for m in evals] == [3, 5]
    assert all(0.0 <= m["eval_top1"] <= m["eval_top5"] <= 1.0 for m in evals)
    assert all(m["eval_localisation_stage3"] > 0 for m in evals)  # digits have boxes
    events = [n for n in os.listdir(workdir) if n.startswith("events.out.tfevents")]
    pictures = [
        (event.step, value.tag)
        for name in events
        for event in tf.compat.v1.train.summary_iterator(os.path.join(workdir, name))
        for value in event.summary.value
        if value.tag == "attention"
    ]
    assert sorted(pictures) == [(3, "attention"), (5, "attention")]  # masks at each eval
    # The latest two and the best by eval top-1 are kept.
    assert {"4", "5"} <= set(os.listdir(os.path.join(workdir, "checkpoints")))


def _run_main(*args, devices=1):
    return commands.run("main", *args, devices=devices)


def test_missing_dataset_fails_at_start_and_writes_nothing(tmp_path):
    data_dir, workdir = tmp_path / "data", tmp_path / "work"
    data_dir.mkdir()
    proc = _run_main(
        "--config=experiments/cifar10_att92.py",
        f"--workdir={workdir}",
        f"--config.data_dir={data_dir}",
        "--config.download=False",  # the offline default: data/test_input_pipeline.py
    )
    assert proc.returncode != 0
    assert "error:" in proc.stderr and str(data_dir) in proc.stderr
    assert "manual" in proc.stderr and "cifar-10-binary.tar.gz" in proc.stderr
    assert "download is off" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not workdir.exists() and list(data_dir.iterdir()) == []


# One setting of each kind the command refuses: a key's range and one across keys (each
# declared key's bad values are test_config_check.py's, in this process), a model, a data
# set, an image folder, the devices, a misspelt key, an unparsable value, a model override.
@pytest.mark.parametrize(
    "args,devices,message",
    [
        (["--config.momentum=1.5"], 1, "config.momentum=1.5 is out of range; allowed: 0 <="),
        (["--config.lr_boundaries=(2000,100)"], 1, "lr_boundaries=(2000, 100) is not strictly"),
        (["--config.model=attention57"], 1, "config.model='attention57' is not a model; allowed:"),
        (["--config.dataset=mnist"], 1, "Unknown dataset 'mnist'; valid names are:"),
        (["--config.dataset=image_folder:/no/such"], 1, "Image folder /no/such does not exist"),
        (["--config.batch_size=3"], 2, "batch_size=3 is not divisible by the 2 devices"),
        (["--config.batch_sise=3"], 1, "bad --config: 'batch_sise' Did you mean \"batch_size\""),
        (["--config.learning_rate=abc"], 1, "--config.learning_rate=abc: could not convert"),
        (["--config.model_overrides.widths=(8,8)"], 1, "widths needs one value per stage (4)"),
    ],
)
def test_bad_settings_fail_with_one_line_and_write_nothing(tmp_path, args, devices, message):
    workdir = tmp_path / "work"
    proc = _run_main(
        "--config=experiments/quickstart.py", f"--workdir={workdir}", *args, devices=devices
    )
    assert proc.returncode != 0
    assert message in proc.stderr and "Traceback" not in proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert message in line  # one line says it all
    assert not workdir.exists()


def test_a_config_file_with_a_syntax_error_fails_with_one_line(tmp_path):
    config = tmp_path / "broken.py"
    config.write_text("def get_config(:\n    pass\n")
    proc = _run_main(f"--config={config}", f"--workdir={tmp_path / 'work'}")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert f"error: bad --config: invalid syntax in {config}, line 1" in proc.stderr
    assert not (tmp_path / "work").exists()


def test_a_config_file_that_raises_names_its_line_in_one_line(tmp_path):
    config = tmp_path / "typo.py"
    config.write_text(
        "from ran_jax import configs\n\n\ndef get_config():\n    c = configs.quickstart()\n"
        "    c.batch_size = confg.batch_size\n    return c\n"
    )
    proc = _run_main(f"--config={config}", f"--workdir={tmp_path / 'work'}")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert line == (
        f"error: bad --config: {config}, line 6: NameError: name 'confg' is not defined"
    )
    assert not (tmp_path / "work").exists()


def test_unknown_config_file_fails_with_one_line(tmp_path):
    proc = _run_main("--config=experiments/nope.py", f"--workdir={tmp_path / 'work'}")
    assert proc.returncode != 0
    assert "error: bad --config:" in proc.stderr and "experiments/nope.py" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unwritable_workdir_fails_with_one_line(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    proc = _run_main("--config=experiments/quickstart.py", f"--workdir={blocker / 'work'}")
    assert proc.returncode != 0
    assert f"Cannot write to --workdir={blocker / 'work'}" in proc.stderr
    assert "Traceback" not in proc.stderr and blocker.read_text() == "not a directory"
