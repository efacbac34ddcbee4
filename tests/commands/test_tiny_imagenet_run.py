"""A real-photo layout end to end: Tiny ImageNet-200 from a generated miniature
``tiny-imagenet-200.zip`` (3 classes of 64x64 JPEGs with boxes), trained 2 steps with
experiments/tiny_imagenet_att56.py at tiny width, then evaluate, predict, export and
visualize on that one run, with the readable class names of words.txt."""

import importlib.util
import json
import os
import zipfile

import jax
import numpy as np
import pytest

from helpers import ROOT, TINY
from helpers import tiny_imagenet_archive as archive
from ran_jax import export, predict, visualize
from ran_jax.data import input_pipeline, tiny_imagenet
from ran_jax.training import loop, run_file
from ran_jax.training.evaluation import evaluate_checkpoint

pytestmark = pytest.mark.slow  # a training run and the commands on it


def _experiment_config():
    path = os.path.join(ROOT, "experiments", "tiny_imagenet_att56.py")
    spec = importlib.util.spec_from_file_location("tiny_imagenet_att56", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """2 steps, evaluated and saved at step 2."""
    base = tmp_path_factory.mktemp("tiny_imagenet")
    manual = base / "tfds" / "downloads" / "manual"
    manual.mkdir(parents=True)
    archive.make(manual / tiny_imagenet.ARCHIVE)
    c = _experiment_config()
    c.data_dir = str(base / "tfds")
    c.model_overrides.update(TINY)
    c.batch_size, c.shuffle_buffer = 4, 16
    c.num_train_steps = c.eval_every_steps = c.checkpoint_every_steps = 2
    c.log_every_steps = 1
    workdir = str(base / "run")
    loop.train_and_evaluate(c, workdir, input_pipeline.DataSet(c))
    with zipfile.ZipFile(manual / tiny_imagenet.ARCHIVE) as z:
        z.extract("tiny-imagenet-200/val/images/val_0.JPEG", base)
    image = str(base / "tiny-imagenet-200" / "val" / "images" / "val_0.JPEG")
    return {"workdir": workdir, "base": base, "image": image}


def test_the_run_file_holds_the_data_set_and_its_readable_class_names(run):
    config, info = run_file.read(run["workdir"])
    assert config.model == "cifar_attention56" and config.dataset == "tiny_imagenet"
    assert info.class_names == archive.CLASS_NAMES
    assert (info.image_size, info.augmentation) == (64, "pad_crop_flip")
    with open(os.path.join(run["workdir"], "metrics.jsonl")) as f:
        evals = [m for m in map(json.loads, f) if "eval_top1" in m]
    assert [m["step"] for m in evals] == [2]
    assert 0 <= evals[0]["eval_localisation_stage3"]  # the boxes give the score on photos


def test_evaluate_predict_export_and_visualize_work_on_the_run(run, tmp_path):
    evaluation = evaluate_checkpoint(run["workdir"], input_pipeline.DataSet)
    assert (evaluation["split"], evaluation["num_examples"], evaluation["step"]) == (
        "validation",
        6,
        2,
    )
    top = predict.predict(run["workdir"], [run["image"]], top=3)["predictions"][0]["top"]
    assert sorted((t["class"], t["name"]) for t in top) == list(enumerate(archive.CLASS_NAMES))
    out = tmp_path / "export"
    export.export(run["workdir"], str(out), "jax_export")
    with open(out / export.SIGNATURE_FILE) as f:
        signature = json.load(f)
    assert signature["class_names"] == list(archive.CLASS_NAMES)
    assert signature["input"]["shape"] == ["batch", 64, 64, 3]
    exported = jax.export.deserialize((out / export.JAX_EXPORT_FILE).read_bytes())
    assert exported is not None
    pictures = visualize.visualize(run["workdir"], str(tmp_path / "masks"), [], num=2)
    assert len(pictures["pictures"]) == 2
    assert all(os.path.getsize(p) > 1000 for p in pictures["pictures"])
    assert np.isfinite(evaluation["eval_loss"]) and "eval_localisation_stage3" in evaluation
