"""The paper's ablation studies at a scale one CPU can afford (paper section 4.1).

Each study is a grid of configs (cells) times seeds, run in one of two settings
(``SETTINGS``, ``--dataset``):
- ``cluttered_digits``: the quick-start network (Attention-56's ImageNet topology at 1/8
  width, stages at 10x10, 5x5 and 3x3) on generated cluttered digits;
- ``fashion_mnist``: the paper's CIFAR networks (3x3 stem, stages at 28, 14 and 7 pixels) on
  real images, at a fraction ``width`` of their bottleneck widths (``--width``).
Runs live in ``DIR/[SETTING/]STUDY/CELL/seedK`` (cluttered digits directly under ``DIR``); a
finished run (its final evaluation is in ``metrics.jsonl``) is skipped and an interrupted
one resumes from its checkpoint, so a study can be run in pieces (``--max_runs``). A cell
whose config equals a finished run of another study (Attention-56 with the soft, mixed,
residual mask is in three studies) is not trained again: its run directory becomes a
relative symlink to that run, and the log says so. A run whose loss or gradient turns
non-finite is recorded as diverged (``diverged.txt`` with the error) and the study goes on;
the table lists it. After the runs, ``STUDY/results.md`` gets a table of test error (mean +-
std over the finished seeds) beside the paper's CIFAR-10 figure for the same comparison, and
``results.png`` a plot of it.

Studies (docs/faithfulness.md §6, docs/reproduction.md):
- ``arl_vs_nal``: attention residual learning against naive attention learning, with
  1, 2, 3 and 4 Attention Modules per stage (the paper's Attention-56/92/128/164).
- ``mask_type``: the soft (bottom-up top-down) mask against local convolutions.
- ``mask_activation``: mixed, channel and spatial attention.
- ``noisy_labels``: the attention network (2 modules per stage) against a network without
  Attention Modules at 10/30/50/70% label noise: on Fashion-MNIST the paper's pre-activation
  ResNet-164 at the same width fraction; on cluttered digits the quick-start network's
  stages without modules (shallower than the attention network).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
from collections.abc import Callable
from typing import Any

import ml_collections
import numpy as np
from absl import logging

from ran_jax import configs
from ran_jax.analysis import pictures
from ran_jax.checks import check_choice
from ran_jax.data.info import DataOpener
from ran_jax.models.registry import CIFAR_WIDTHS, get_model
from ran_jax.training import loop


@dataclasses.dataclass(frozen=True)
class Cell:
    """One configuration of a study: ``modules`` Attention Modules per stage (None: the
    setting's network without them, the noisy-label baseline) and config ``overrides``;
    ``paper`` is the paper's CIFAR-10 error (%) for it."""

    name: str
    modules: int | None
    overrides: dict[str, Any]
    paper: float | None = None


STUDIES: dict[str, list[Cell]] = {
    "arl_vs_nal": [
        Cell(f"{kind}_m{m}", m, {"model_overrides.attention": attention}, paper)
        for m, (arl, nal) in zip(
            (1, 2, 3, 4), ((5.52, 5.89), (4.99, 5.35), (4.44, 5.57), (4.31, 7.18))
        )
        for kind, attention, paper in (("ARL", "residual", arl), ("NAL", "naive", nal))
    ],
    "mask_type": [
        Cell("soft", 1, {"model_overrides.mask_type": "soft"}, 5.52),
        Cell("local", 1, {"model_overrides.mask_type": "local"}, 6.48),
    ],
    "mask_activation": [
        Cell(kind, 1, {"model_overrides.mask_activation": kind}, paper)
        for kind, paper in (("mixed", 5.52), ("channel", 6.24), ("spatial", 6.33))
    ],
    "noisy_labels": [
        Cell(f"{name}_noise{round(noise * 100)}", m, {"label_noise": noise}, paper)
        for noise, (resnet, attention) in zip(
            (0.1, 0.3, 0.5, 0.7), ((5.93, 5.15), (6.61, 5.79), (8.35, 7.27), (17.21, 15.75))
        )
        for name, m, paper in (("attention", 2, attention), ("resnet", None, resnet))
    ],
}


def _smoke(c: ml_collections.ConfigDict) -> None:
    """3 steps of a network of 2-channel bottlenecks, evaluated on 64 images: checks the
    machinery, not the paper."""
    c.model_overrides.widths = (2,) * len(c.model_overrides.widths)
    c.model_overrides.stem_width = 4
    c.num_train_steps = c.eval_every_steps = c.checkpoint_every_steps = 3
    c.warmup_steps = 0
    if c.lr_schedule == "piecewise":
        c.lr_boundaries = (2,)
    c.log_every_steps = 1
    c.shuffle_buffer = 64
    c.eval_examples = 64


def _cluttered_digits_config(width: float | None) -> ml_collections.ConfigDict:
    """The quick-start network and data with the studies' shorter schedule, evaluated once at
    the end (``docs/reproduction.md``, "Set-up")."""
    del width  # the quick-start network's
    c = configs.quickstart()
    c.num_train_steps = 1_500
    c.lr_boundaries = (1_000, 1_300)
    c.eval_every_steps = c.num_train_steps
    c.checkpoint_every_steps = 500
    c.attention_images = 0
    return c


FASHION_MNIST_EPOCHS = 2  # the budget of docs/reproduction.md, "Fashion-MNIST"


def _fashion_mnist_config(width: float | None) -> ml_collections.ConfigDict:
    """The paper's CIFAR Attention-56 at ``width`` times its bottleneck widths on
    Fashion-MNIST with ``configs.fashion_mnist`` for FASHION_MNIST_EPOCHS epochs, evaluated
    once at the end (``docs/reproduction.md``, "Fashion-MNIST")."""
    assert width is not None
    c = configs.fashion_mnist("cifar_attention56", epochs=FASHION_MNIST_EPOCHS)
    c.model_overrides.widths = tuple(max(1, round(width * w)) for w in CIFAR_WIDTHS)
    c.warmup_steps = c.num_train_steps // (4 * FASHION_MNIST_EPOCHS)  # a quarter epoch
    c.eval_every_steps = c.num_train_steps
    c.attention_images = 0
    return c


@dataclasses.dataclass(frozen=True)
class Setting:
    """Where the studies run: a data set, the networks trained on it and their schedule."""

    dataset: str
    label: str  # the data set, in the tables' words
    test_set: str  # what the tables' error is measured on
    region: str  # the object region of the localisation score, in the tables' words
    width: float | None  # default fraction of the paper's bottleneck widths; None: fixed
    base: Callable[[float | None], ml_collections.ConfigDict]
    network: Callable[[int | None], dict[str, Any]]  # overrides: m modules per stage, or none

    def config(self, width: float | None, smoke: bool = False) -> ml_collections.ConfigDict:
        c = self.base(width)
        if smoke:
            _smoke(c)
        return c

    def directory(self, workdir: str, width: float | None) -> str:
        """Where this setting's studies live: cluttered digits' in ``workdir`` itself."""
        if self.width is None:
            return workdir
        return os.path.join(workdir, f"{self.dataset}_width{width:g}")


SETTINGS: dict[str, Setting] = {
    "cluttered_digits": Setting(
        "cluttered_digits",
        "cluttered digits",
        "the 4,000 test images",
        "the digit's box",
        None,
        _cluttered_digits_config,
        lambda m: {"model_overrides.modules": (m or 0,) * 3 + (0,)},
    ),
    "fashion_mnist": Setting(
        "fashion_mnist",
        "Fashion-MNIST",
        "the 10,000 test images",
        "the garment's pixels (docs/data.md, Fashion-MNIST)",
        0.25,
        _fashion_mnist_config,
        lambda m: (
            {"model": "preact_resnet164"} if m is None else {"model_overrides.modules": (m, m, m)}
        ),
    ),
}


def setting_of(dataset: str, width: float | None) -> tuple[Setting, float | None]:
    """The setting of ``--dataset`` and its width (its default where ``width`` is None)."""
    check_choice("--dataset", dataset, sorted(SETTINGS))
    setting = SETTINGS[dataset]
    if setting.width is None:
        if width is not None:
            raise ValueError(
                f"--width applies to the CIFAR networks of --dataset=fashion_mnist; the "
                f"{dataset} studies use the quick-start network's widths: drop --width."
            )
        return setting, None
    width = setting.width if width is None else width
    if not 0 < width <= 4:
        raise ValueError(
            f"--width must be in (0, 4], a fraction of the paper's widths; got {width}."
        )
    return setting, width


def run_config(
    setting: Setting,
    base: ml_collections.ConfigDict,
    cell: Cell,
    seed: int,
    data_dir: str | None,
) -> ml_collections.ConfigDict:
    config = base.copy_and_resolve_references()
    for key, value in {**setting.network(cell.modules), **cell.overrides}.items():
        group, _, name = key.rpartition(".")
        (config[group] if group else config)[name] = value
    config.seed = seed
    if data_dir:
        config.data_dir = data_dir
    return config


DIVERGED = "diverged.txt"


def diverged(workdir: str) -> bool:
    return os.path.exists(os.path.join(workdir, DIVERGED))


def final_eval(workdir: str, steps: int) -> dict[str, float] | None:
    """The evaluation a finished run logged at its last step, or None."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        for line in f:
            metrics = json.loads(line)
            if metrics["step"] == steps and "eval_top1" in metrics:
                return metrics
    return None


def _resolved(config: ml_collections.ConfigDict) -> tuple[dict, Any]:
    """The config with its model overrides resolved into the network they build, so that
    cells spelling out a default (``mask_type='soft'``) compare equal to cells that do not."""
    settings = config.to_dict()
    overrides = settings.pop("model_overrides")
    return settings, get_model(config.model, num_classes=10, **overrides)


def twin(
    setting: Setting,
    base: ml_collections.ConfigDict,
    study: str,
    cell: Cell,
    seed: int,
    data_dir: str | None,
    directory: str,
) -> str | None:
    """A finished run of another study's cell with exactly this run's config, or None."""
    config = _resolved(run_config(setting, base, cell, seed, data_dir))
    for other, cells in STUDIES.items():
        for candidate in cells:
            if (other, candidate.name) == (study, cell.name):
                continue
            if _resolved(run_config(setting, base, candidate, seed, data_dir)) != config:
                continue
            run_dir = os.path.join(directory, other, candidate.name, f"seed{seed}")
            if final_eval(run_dir, base.num_train_steps) is not None:
                return run_dir
    return None


def run_study(
    study: str,
    workdir: str,
    open_data: DataOpener,
    seeds: int = 2,
    max_runs: int | None = None,
    smoke: bool = False,
    data_dir: str | None = None,
    dataset: str = "cluttered_digits",
    width: float | None = None,
) -> dict:
    """Trains the study's unfinished runs (at most ``max_runs``) in the setting of
    ``dataset`` (``SETTINGS``) at ``width`` on the data sets ``open_data`` opens, then writes
    the results."""
    check_choice("--study", study, sorted(STUDIES))
    setting, width = setting_of(dataset, width)
    if seeds < 1:
        raise ValueError(f"--seeds must be positive, got {seeds}.")
    base = setting.config(width, smoke)
    directory = setting.directory(workdir, width)
    root = os.path.join(directory, study)
    trained = 0

    def ended(run_dir: str) -> bool:
        return diverged(run_dir) or final_eval(run_dir, base.num_train_steps) is not None

    # seed-major: every cell gets its first seed first
    for seed, cell in itertools.product(range(seeds), STUDIES[study]):
        run_dir = os.path.join(root, cell.name, f"seed{seed}")
        if ended(run_dir):
            continue
        if not os.path.lexists(run_dir) and (
            same := twin(setting, base, study, cell, seed, data_dir, directory)
        ):
            os.makedirs(os.path.dirname(run_dir), exist_ok=True)
            os.symlink(os.path.relpath(same, os.path.dirname(run_dir)), run_dir)
            logging.info(
                "Study %s: %s seed %d is the finished run %s.", study, cell.name, seed, same
            )
            continue
        if max_runs is not None and trained >= max_runs:
            continue
        logging.info("Study %s: training %s, seed %d, in %s.", study, cell.name, seed, run_dir)
        try:
            config = run_config(setting, base, cell, seed, data_dir)
            data = loop.open_data(config, run_dir, open_data)
            loop.train_and_evaluate(config, run_dir, data)
        except loop.NonFiniteError as e:  # a result of the study, not a failure of it
            os.makedirs(run_dir, exist_ok=True)
            with open(os.path.join(run_dir, DIVERGED), "w") as f:
                f.write(f"{e}\n")
            logging.warning("Study %s: %s seed %d diverged: %s", study, cell.name, seed, e)
        trained += 1
        if not ended(run_dir):
            break  # the run was stopped (SIGTERM, Ctrl-C): so is the study
    rows = write_results(study, root, seeds, base.num_train_steps, setting, width)
    return {
        "study": study,
        "trained_now": trained,
        "results": os.path.join(root, "results.md"),
        "rows": rows,
    }


def collect(study: str, root: str, seeds: int, steps: int) -> list[dict]:
    """Per cell: test errors (%) and localisation scores of its finished seeds."""
    rows = []
    for cell in STUDIES[study]:
        dirs = [os.path.join(root, cell.name, f"seed{seed}") for seed in range(seeds)]
        finished = [m for d in dirs if (m := final_eval(d, steps)) is not None]
        errors = [100 * (1 - m["eval_top1"]) for m in finished]
        scores = [
            m["eval_localisation_stage1"] for m in finished if "eval_localisation_stage1" in m
        ]
        if cell.overrides.get("model_overrides.mask_activation") == "channel":
            scores = []  # M in [-1, 1]: a ratio of signed means says nothing about where
        rows.append(
            {
                "cell": cell.name,
                "runs": len(finished),
                "diverged": sum(map(diverged, dirs)),
                "errors": errors,
                "mean": float(np.mean(errors)) if errors else None,
                "std": float(np.std(errors, ddof=1)) if len(errors) > 1 else None,
                "localisation": float(np.mean(scores)) if scores else None,
                "paper": cell.paper,
            }
        )
    return rows


def cell_text(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def write_results(
    study: str, root: str, seeds: int, steps: int, setting: Setting, width: float | None
) -> list[dict]:
    """``results.md`` (table) and ``results.png`` (plot) of the finished runs."""
    rows = collect(study, root, seeds, steps)
    os.makedirs(root, exist_ok=True)
    networks = "" if width is None else f", CIFAR networks at {width:g} of the paper's widths"
    lines = [
        f"# {study}: test error on {setting.label}{networks} ({steps} steps per run)",
        "",
        "| cell | finished seeds | error % (mean ± std) | per seed | stage-1 localisation "
        "| paper, CIFAR-10 error % |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        spread = f"{cell_text(r['mean'])} ± {cell_text(r['std'])}" if r["runs"] else "–"
        seeds_text = ", ".join([f"{e:.2f}" for e in r["errors"]] + ["diverged"] * r["diverged"])
        seeds_text = seeds_text or "–"
        lines.append(
            f"| {r['cell']} | {r['runs']} | {spread} | {seeds_text} "
            f"| {cell_text(r['localisation'], 3)} | {cell_text(r['paper'])} |"
        )
    lines += [
        "",
        f"Error: 100 - top-1 % on {setting.test_set} after the last step; std over seeds "
        "(n - 1); a diverged run (non-finite loss) is listed, not averaged. Localisation: "
        f"mean stage-1 mask inside {setting.region} over outside, mean over seeds "
        "(1 = no preference).",
    ]
    with open(os.path.join(root, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")

    pictures.study_plot(study, rows, os.path.join(root, "results.png"), setting.label)
    return rows
