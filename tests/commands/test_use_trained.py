"""Using a trained run: evaluate, predict and export, on a tiny network trained on a
generated image folder (own data, end to end). One training run serves the module; it
turns on every option of the modern recipe, so the real loop runs them all."""

import json
import os

import jax
import numpy as np
import pytest
import tensorflow as tf

from helpers import TINY, commands, folder_images
from ran_jax import configs, export, predict
from ran_jax.data import image_files, input_pipeline, preprocess
from ran_jax.data.datasets import IMAGENET_NORMALISATION
from ran_jax.training import loop, run_file, trained
from ran_jax.training.evaluation import evaluate_checkpoint

pytestmark = pytest.mark.slow  # a trained run, and the commands in subprocesses


def _evaluate(workdir, *args, **kwargs):
    """``python -m ran_jax.evaluate``'s computation."""
    return evaluate_checkpoint(workdir, input_pipeline.DataSet, *args, **kwargs)


# Measured: SavedModel and jax.export logits differ from model.apply by at most 2.4e-7.
EXPORT_ATOL = 1e-5


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """4 steps on the image folder at 32x32, evaluated (at 40x40) and saved at steps 2 and 4,
    with EMA weights evaluated beside the weights."""
    base = tmp_path_factory.mktemp("use_trained")
    folder = folder_images.make(base / "images")
    c = configs.base()
    c.dataset = f"image_folder:{folder}"
    c.image_size, c.eval_image_size = 32, 40
    c.model_overrides.update(TINY)
    c.batch_size = 4
    c.shuffle_buffer = 32
    c.num_train_steps = 4
    c.log_every_steps = 2
    c.eval_every_steps = 2
    c.checkpoint_every_steps = 2
    c.lr_schedule, c.warmup_steps = "cosine", 1
    c.decay_norm_and_bias = False
    c.mixup_alpha, c.cutmix_alpha, c.mix_off_last_steps = 0.4, 1.0, 1
    c.label_smoothing, c.random_erasing = 0.1, 0.5
    c.ema_decay, c.accumulate_steps = 0.5, 2
    workdir = str(base / "run")
    loop.train_and_evaluate(c, workdir, input_pipeline.DataSet(c))
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        evals = {m["step"]: m for m in map(json.loads, f) if "eval_top1" in m}
    return {"workdir": workdir, "folder": folder, "evals": evals, "base": base}


def _test_images(folder):
    return sorted(str(p) for p in (folder / "test").rglob("*") if p.is_file())


def test_the_run_file_describes_model_data_and_classes(run):
    config, dataset = run_file.read(run["workdir"])
    assert config.model_overrides.widths == [2, 2, 2] and config.eval_image_size == 40
    assert dataset.class_names == folder_images.CLASSES
    assert dataset.image_size == 32 and dataset.eval_image_size == 40
    assert dataset.num_channels == 3 and dataset.num_eval == 6


def test_training_evaluated_at_the_eval_size_and_evaluate_reproduces_it(run):
    assert sorted(run["evals"]) == [2, 4]
    for checkpoint, step in (("latest", 4), ("2", 2)):
        result = _evaluate(run["workdir"], checkpoint)
        assert result["step"] == step and result["image_size"] == 40
        assert result["num_examples"] == 6 and result["split"] == "test"
        for key in ("eval_top1", "eval_top5", "eval_loss", "eval_ema_top1", "eval_ema_loss"):
            assert result[key] == pytest.approx(run["evals"][step][key], abs=1e-6)


def test_best_is_the_step_with_the_highest_eval_top1(run):
    scores = {step: m["eval_top1"] for step, m in run["evals"].items()}
    best = max(scores, key=lambda s: (scores[s], s))
    assert _evaluate(run["workdir"], "best")["step"] == best


def test_evaluate_at_another_size_and_on_another_split(run):
    result = _evaluate(run["workdir"], image_size=48, split="train", batch_size=6)
    assert result["image_size"] == 48 and result["split"] == "train"
    assert result["num_examples"] == 18
    assert 0 <= result["eval_top1"] <= result["eval_top5"] <= 1 and result["eval_loss"] > 0


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(workdir="/nonexistent/run"), "--workdir=/nonexistent/run does not exist"),
        (dict(checkpoint="7"), r"has no checkpoint of step 7; it has steps \[2, 4\]"),
        (dict(checkpoint="newest"), "--checkpoint=newest is not best, latest, a step number"),
        (
            dict(split="validation"),
            "'validation': .* has no such split; its splits are: test, train",
        ),
        (dict(image_size=4), "Evaluation images of 4x4 are too small"),
    ],
)
def test_evaluate_rejects_bad_input_with_one_line(run, kwargs, message):
    kwargs = {"workdir": run["workdir"], **kwargs}
    with pytest.raises(ValueError, match=message) as error:
        _evaluate(**kwargs)
    assert "\n" not in str(error.value)


def test_a_directory_without_a_run_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match="has no run.json"):
        _evaluate(str(tmp_path))


def test_predict_gives_the_probabilities_of_model_apply_on_the_eval_view(run):
    paths = _test_images(run["folder"])[:3]
    grey = run["base"] / "grey.png"
    grey.write_bytes(tf.io.encode_png(np.full((70, 45, 1), 200, np.uint8)).numpy())
    paths.append(str(grey))
    result = predict.predict(run["workdir"], paths, top=3)
    assert result["step"] == 4 and [p["image"] for p in result["predictions"]] == paths

    loaded = trained.load(run["workdir"])
    info = loaded.dataset
    views = np.stack([preprocess.eval_view(image_files.read_image(p, 3), info) for p in paths])
    assert views.shape == (4, 40, 40, 3)  # the run's evaluation size
    expected = jax.nn.softmax(loaded.model.apply(loaded.variables(), views, train=False))
    for prediction, probabilities in zip(result["predictions"], np.asarray(expected)):
        top = prediction["top"]
        assert [t["class"] for t in top] == list(np.argsort(-probabilities, kind="stable"))
        assert [t["name"] for t in top] == [folder_images.CLASSES[t["class"]] for t in top]
        got = [t["probability"] for t in top]
        np.testing.assert_allclose(got, np.sort(probabilities)[::-1], rtol=1e-5, atol=1e-6)
        assert sum(got) == pytest.approx(1.0, abs=1e-5)


def test_the_ema_weights_are_checkpointed_and_serve_predictions(run):
    loaded = trained.load(run["workdir"])
    raw, ema = loaded.variables(), loaded.variables(ema=True)
    assert jax.tree_util.tree_structure(raw) == jax.tree_util.tree_structure(ema)
    assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(raw), jax.tree.leaves(ema)))
    path = _test_images(run["folder"])[:1]
    with_ema = predict.predict(run["workdir"], path, ema=True)["predictions"][0]["top"]
    without = predict.predict(run["workdir"], path)["predictions"][0]["top"]
    assert [t["probability"] for t in with_ema] != [t["probability"] for t in without]


@pytest.mark.parametrize(
    "paths,message",
    [
        (["missing.jpg"], "Image missing.jpg does not exist"),
        ([], "Name at least one image file"),
        (["BAD"], "Cannot read .*bad.png as an image"),
    ],
)
def test_predict_rejects_missing_and_unreadable_images(run, tmp_path, paths, message):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    paths = [str(bad) if p == "BAD" else p for p in paths]
    with pytest.raises(ValueError, match=message):
        predict.predict(run["workdir"], paths)


@pytest.fixture(scope="module")
def reference(run):
    """Pixel images (0-255) at the eval size and the logits model.apply gives them."""
    loaded = trained.load(run["workdir"])
    pixels = np.random.default_rng(1).uniform(0, 255, (3, 40, 40, 3)).astype(np.float32)
    mean, std = IMAGENET_NORMALISATION
    normalised = (pixels / 255 - np.array(mean)) / np.array(std)
    logits = np.asarray(loaded.model.apply(loaded.variables(), normalised, train=False))
    return pixels, logits


def test_saved_model_serves_any_batch_with_the_logits_of_model_apply(run, reference, tmp_path):
    pixels, logits = reference
    out = str(tmp_path / "saved_model")
    result = export.export(run["workdir"], out, "saved_model")
    assert result["input_shape"] == ["batch", 40, 40, 3]
    serve = tf.saved_model.load(out).signatures["serving_default"]
    for n in (1, 3):
        got = serve(images=tf.constant(pixels[:n]))["logits"].numpy()
        np.testing.assert_allclose(got, logits[:n], atol=EXPORT_ATOL)
    with open(os.path.join(out, export.SIGNATURE_FILE)) as f:
        signature = json.load(f)
    assert signature["class_names"] == list(folder_images.CLASSES) and signature["step"] == 4


def test_jax_export_serves_any_batch_with_the_logits_of_model_apply(run, reference, tmp_path):
    pixels, logits = reference
    out = tmp_path / "jax_export"
    export.export(run["workdir"], str(out), "jax_export", checkpoint="latest")
    exported = jax.export.deserialize((out / export.JAX_EXPORT_FILE).read_bytes())
    assert set(exported.platforms) == {"cpu", "cuda", "tpu"}
    for n in (1, 3):
        np.testing.assert_allclose(exported.call(pixels[:n]), logits[:n], atol=EXPORT_ATOL)


def _onnx_runtime():
    onnx = pytest.importorskip("onnx", reason=f"no [onnx] extra: {export.ONNX_INSTALL}")
    ort = pytest.importorskip("onnxruntime", reason=f"no [onnx] extra: {export.ONNX_INSTALL}")
    return onnx, ort


def test_onnx_export_serves_any_batch_with_the_logits_of_model_apply(run, reference, tmp_path):
    onnx, ort = _onnx_runtime()
    pixels, logits = reference
    out = tmp_path / "onnx"
    result = export.export(run["workdir"], str(out), "onnx")
    assert result["input_shape"] == ["batch", 40, 40, 3] and result["format"] == "onnx"
    path = str(out / export.ONNX_FILE)
    onnx.checker.check_model(path, full_check=True)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for n in (1, 3):
        (got,) = session.run(None, {"images": pixels[:n]})
        assert np.max(np.abs(got - logits[:n])) <= 1e-4 * np.max(np.abs(logits[:n]))
    assert sorted(os.listdir(out)) == [export.ONNX_FILE, export.SIGNATURE_FILE]


def test_onnx_export_takes_another_image_size(run, tmp_path):
    _, ort = _onnx_runtime()
    loaded = trained.load(run["workdir"])
    pixels = np.random.default_rng(2).uniform(0, 255, (2, 48, 48, 3)).astype(np.float32)
    mean, std = IMAGENET_NORMALISATION
    normalised = (pixels / 255 - np.array(mean)) / np.array(std)
    logits = np.asarray(loaded.model.apply(loaded.variables(), normalised, train=False))
    out = tmp_path / "onnx_48"
    result = export.export(run["workdir"], str(out), "onnx", image_size=48)
    assert result["input_shape"] == ["batch", 48, 48, 3]
    session = ort.InferenceSession(str(out / export.ONNX_FILE), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"images": pixels})
    assert np.max(np.abs(got - logits)) <= 1e-4 * np.max(np.abs(logits))


def test_onnx_export_of_the_best_checkpoint_classifies_as_predict(run, tmp_path):
    """``python -m ran_jax.export --format=onnx --checkpoint=best``, run by ONNX Runtime on
    the images predict reads, prepared as for predict but not normalised, gives predict's
    classes and probabilities."""
    _, ort = _onnx_runtime()
    out = tmp_path / "onnx_best"
    args = [f"--workdir={run['workdir']}", f"--out={out}", "--format=onnx", "--checkpoint=best"]
    proc = commands.run("export", *args, "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("Wrote onnx of step ")
    paths = _test_images(run["folder"])
    info = run_file.read(run["workdir"])[1]
    mean, std = (np.array(v, np.float32) for v in info.normalisation)
    pixels = ((image_files.eval_views(paths, info) * std + mean) * 255).astype(np.float32)
    session = ort.InferenceSession(str(out / export.ONNX_FILE), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"images": pixels})
    probabilities = np.asarray(jax.nn.softmax(logits))
    expected = predict.predict(run["workdir"], paths, checkpoint="best", top=3)
    assert expected["step"] == json.loads(proc.stdout.strip().splitlines()[-1])["step"]
    for prediction, p in zip(expected["predictions"], probabilities):
        top = prediction["top"]
        assert [t["class"] for t in top] == list(np.argsort(-p, kind="stable")[:3])
        np.testing.assert_allclose([t["probability"] for t in top], np.sort(p)[::-1][:3], rtol=1e-4)


def test_an_onnx_export_that_differs_from_model_apply_is_removed(run, tmp_path, monkeypatch):
    _onnx_runtime()
    from ran_jax.training import onnx_graph

    wrong = lambda g, eqn, x: g.node("Relu", [x])  # noqa: E731  (the masks' sigmoid)
    monkeypatch.setitem(onnx_graph._RULES, "logistic", wrong)
    out = tmp_path / "onnx_wrong"
    with pytest.raises(ValueError, match="logits differ from model.apply's by") as error:
        export.export(run["workdir"], str(out), "onnx")
    assert "\n" not in str(error.value) and os.listdir(out) == []


def test_export_rejects_an_unknown_format_and_a_used_directory(run, tmp_path):
    with pytest.raises(ValueError, match="Unknown --format 'tflite'"):
        export.export(run["workdir"], str(tmp_path / "a"), "tflite")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "file").write_text("x")
    with pytest.raises(ValueError, match="is not an empty directory"):
        export.export(run["workdir"], str(tmp_path / "used"))


def test_predict_command_prints_the_top_classes_and_a_json_line(run):
    image = _test_images(run["folder"])[0]
    proc = commands.run("predict", f"--workdir={run['workdir']}", "--json", image)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[1] == image and len(lines) == 2 + 3 + 1  # header, image, 3 classes, JSON
    top = json.loads(lines[-1])["predictions"][0]["top"]
    assert [t["name"] for t in top] == [line.split()[-1] for line in lines[2:5]]


@pytest.mark.parametrize(
    "module,args,message",
    [
        ("evaluate", ["--workdir=/nonexistent"], "error: --workdir=/nonexistent does not exist"),
        ("predict", ["--workdir=WORKDIR", "nope.png"], "error: Image nope.png does not exist"),
        ("export", ["--workdir=WORKDIR", "--out=OUT", "--format=tflite"], "Unknown --format"),
    ],
)
def test_commands_fail_with_one_line_and_no_traceback(run, tmp_path, module, args, message):
    args = [a.replace("WORKDIR", run["workdir"]).replace("OUT", str(tmp_path)) for a in args]
    proc = commands.run(module, *args)
    assert proc.returncode != 0
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_a_missing_checkpoint_is_refused_before_the_data_set_is_opened(run):
    """``evaluate`` opens the data set (and imports TensorFlow, seconds) only once the run
    and its checkpoint are found."""

    def open_data(config):
        raise AssertionError("the data set was opened")

    with pytest.raises(ValueError, match="has no checkpoint of step 99"):
        evaluate_checkpoint(run["workdir"], open_data, "99")
