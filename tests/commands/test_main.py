"""End to end: train, stop, re-run resumes; missing data and bad settings fail before writing."""

import json
import os
import sys

import pytest
import tensorflow as tf
from absl import flags

from helpers import ROOT, TINY, commands
from ran_jax import configs, main
from ran_jax.analysis.pictures import AttentionPictures
from ran_jax.data import input_pipeline
from ran_jax.training import loop

slow = pytest.mark.slow  # end to end: a training run, and the command in subprocesses


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


@slow
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


@slow
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


QUICKSTART = os.path.join(ROOT, "experiments", "quickstart.py")


def _refusal(tmp_path, monkeypatch, config: str, *args: str, workdir=None) -> str:
    """The line ``python -m ran_jax.main --config=CONFIG --workdir=WORKDIR ARGS`` stops with
    (WORKDIR: tmp_path/work), found in this process by the command's own flag parsing and
    start."""

    def not_refused(*_, **__):
        raise AssertionError("the command went on to train")

    monkeypatch.setattr(loop, "train_and_evaluate", not_refused)
    flag_values = flags.FlagValues()
    main._define_flags(flag_values)
    argv = ["main", f"--config={config}", f"--workdir={workdir or tmp_path / 'work'}", *args]
    monkeypatch.setattr(sys, "argv", argv)  # where --config reads its overrides
    with pytest.raises(SystemExit) as stop:
        main._parse_flags(argv, flag_values)
        main.train(flag_values.config, flag_values.workdir)
    line = str(stop.value.code)
    assert "\n" not in line, line
    return line


# One setting of each kind the command refuses: a key's range and one across keys (each
# declared key's bad values are test_config_check.py's), a model, a data set, an image folder,
# a misspelt key, an unparsable value, a model override: in this process (``_refusal``). The
# command's runs (the test above, and the test after this one) show that it prints such a
# line, exits non-zero and writes nothing.
@pytest.mark.parametrize(
    "args,message",
    [
        (["--config.momentum=1.5"], "config.momentum=1.5 is out of range; allowed: 0 <="),
        (["--config.lr_boundaries=(2000,100)"], "lr_boundaries=(2000, 100) is not strictly"),
        (["--config.model=attention57"], "config.model='attention57' is not a model; allowed:"),
        (["--config.dataset=mnist"], "Unknown dataset 'mnist'; valid names are:"),
        (["--config.dataset=image_folder:/no/such"], "Image folder /no/such does not exist"),
        (["--config.learning_rate=abc"], "--config.learning_rate=abc: could not convert"),
        (["--config.model_overrides.widths=(8,8)"], "widths needs one value per stage (4)"),
    ],
)
def test_bad_settings_are_refused_in_one_line_before_anything_is_written(
    tmp_path, monkeypatch, args, message
):
    line = _refusal(tmp_path, monkeypatch, QUICKSTART, *args)
    assert line.startswith("error: ") and message in line
    assert not (tmp_path / "work").exists()


@slow
@pytest.mark.parametrize(
    "args,devices,message",
    [
        (["--config.batch_size=3"], 2, "batch_size=3 is not divisible by the 2 devices"),
        (["--config.batch_sise=3"], 1, "bad --config: 'batch_sise' Did you mean \"batch_size\""),
    ],
)
def test_the_command_prints_one_line_and_writes_nothing(tmp_path, args, devices, message):
    workdir = tmp_path / "work"
    proc = _run_main(f"--config={QUICKSTART}", f"--workdir={workdir}", *args, devices=devices)
    assert proc.returncode != 0
    assert message in proc.stderr and "Traceback" not in proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert message in line  # one line says it all
    assert not workdir.exists()


def test_a_config_file_with_a_syntax_error_fails_with_one_line(tmp_path, monkeypatch):
    config = tmp_path / "broken.py"
    config.write_text("def get_config(:\n    pass\n")
    line = _refusal(tmp_path, monkeypatch, str(config))
    assert line == f"error: bad --config: invalid syntax in {config}, line 1"
    assert not (tmp_path / "work").exists()


def test_a_config_file_that_raises_names_its_line_in_one_line(tmp_path, monkeypatch):
    config = tmp_path / "typo.py"
    config.write_text(
        "from ran_jax import configs\n\n\ndef get_config():\n    c = configs.quickstart()\n"
        "    c.batch_size = confg.batch_size\n    return c\n"
    )
    line = _refusal(tmp_path, monkeypatch, str(config))
    assert line == (
        f"error: bad --config: {config}, line 6: NameError: name 'confg' is not defined"
    )
    assert not (tmp_path / "work").exists()


def test_unknown_config_file_fails_with_one_line(tmp_path, monkeypatch):
    line = _refusal(tmp_path, monkeypatch, "experiments/nope.py")
    assert line.startswith("error: bad --config:") and "experiments/nope.py" in line


def test_unwritable_workdir_fails_with_one_line(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    line = _refusal(tmp_path, monkeypatch, QUICKSTART, workdir=blocker / "work")
    assert f"Cannot write to --workdir={blocker / 'work'}" in line
    assert blocker.read_text() == "not a directory"
