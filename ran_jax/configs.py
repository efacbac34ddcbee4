"""Every config key, declared once, and the shared training recipes built from them.

``KEYS`` states each key's default, type, allowed values and help; ``base()`` builds the
ConfigDict from it and ``ran_jax.training.config_check.validate`` checks a config against it
before anything is written. Each file in ``experiments/`` states only what differs.

The recipes: ``cifar`` and ``imagenet`` (the paper's; the defaults of ``KEYS`` are its CIFAR
recipe), ``cifar_modern`` and ``fashion_mnist``. Each function's docstring names the page that
describes its recipe.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections

DTYPES = ("float32", "bfloat16")  # compute dtypes; parameters stay float32
LR_SCHEDULES = ("piecewise", "cosine")
PARALLELISM = ("shard_map", "pmap")  # docs/training.md says why shard_map is the default
# How training images are augmented (paper section 4.1), and so how evaluation views them:
# - "pad_crop_flip": CIFAR's: zero-pad 4 pixels per side, random crop of the original size,
#   random horizontal flip; images of one size, evaluated as they are;
# - "pad_crop": the same without flips (digits, whose mirror images are no digits);
# - "resized_crop_flip": ImageNet's: Inception-style random crop of 8-100% of the area,
#   resized to image_size, random flip; images of any size, evaluated by resizing the
#   shorter side to eval_image_size / 0.875 and cropping the centre.
AUGMENTATIONS = ("pad_crop_flip", "pad_crop", "resized_crop_flip")


@dataclasses.dataclass(frozen=True)
class Key:
    """One config key: default, type, allowed values and one line of help.

    A ``None`` default makes the key a placeholder of ``type``: None is allowed and means what
    ``help`` says. A tuple key holds ``item`` values. The bounds hold for a number, or for
    each item of a tuple; ``choices`` lists the allowed values of a string.
    """

    name: str
    default: Any
    type: type
    help: str
    at_least: float | None = None
    above: float | None = None
    at_most: float | None = None
    below: float | None = None
    choices: tuple[Any, ...] = ()
    item: type | None = None

    @property
    def optional(self) -> bool:
        return self.default is None

    def allowed(self) -> str:
        """What the key accepts, in words: ``0 <= momentum < 1``, ``'float32' or 'bfloat16'``."""
        if self.choices:
            text = " or ".join(map(repr, self.choices))
        elif self.type in (bool, str, dict):
            text = {bool: "True or False", str: "a string", dict: "a mapping"}[self.type]
        elif self.item is not None:
            text = f"a tuple of {self.item.__name__}s, {self._range('each')}"
        else:
            text = self._range(self.name)
            text = f"an int, {text}" if self.type is int else text
        return f"{text}, or None" if self.optional else text

    def _range(self, subject: str) -> str:
        """``subject`` within the bounds: ``0 <= momentum < 1``, ``batch_size >= 1``."""
        low, low_op = (self.at_least, "<=") if self.above is None else (self.above, "<")
        high, high_op = (self.at_most, "<=") if self.below is None else (self.below, "<")
        if low is not None and high is not None:
            return f"{low} {low_op} {subject} {high_op} {high}"
        if low is not None:
            return f"{subject} {low_op.replace('<', '>')} {low}"
        if high is not None:
            return f"{subject} {high_op} {high}"
        return f"any {self.type.__name__}"


KEYS: tuple[Key, ...] = (
    Key("model", "cifar_attention56", str, "A name of ran_jax.models.list_models()."),
    Key("model_overrides", {}, dict, "get_model overrides, e.g. attention='naive' (ablations)."),
    Key(
        "dataset",
        "cifar10",
        str,
        "cifar10, cifar100, imagenet2012, fashion_mnist, tiny_imagenet, cluttered_digits, "
        "'image_folder:ROOT' "
        "(your own images) or 'tfds:NAME' (any tfds image-classification data set); checked "
        "when the data set is opened, before anything is written.",
    ),
    Key("data_dir", None, str, "tfds data_dir; None = tfds's default."),
    Key("download", True, bool, "Let tfds download CIFAR when it is missing (never ImageNet)."),
    Key(
        "image_size",
        32,
        int,
        "Training input side with 'resized_crop_flip'; the other augmentations keep the "
        "images' own size.",
        at_least=1,
    ),
    Key(
        "eval_image_size",
        None,
        int,
        "Evaluation input side with 'resized_crop_flip'; None = image_size.",
        at_least=1,
    ),
    Key(
        "train_split",
        None,
        str,
        "None = the data set's train split; checked when the data set is opened.",
    ),
    Key(
        "eval_split",
        None,
        str,
        "None = the data set's test split; checked when the data set is opened.",
    ),
    Key(
        "augmentation",
        None,
        str,
        "How training images are augmented (AUGMENTATIONS); None = the data set's own.",
        choices=AUGMENTATIONS,
    ),
    Key("eval_examples", None, int, "Evaluate the first N of eval_split; None = all.", at_least=1),
    Key("label_noise", 0.0, float, "Noisy labels: 1 - clean-label ratio r.", at_least=0, below=1),
    Key("shuffle_buffer", 16_384, int, "Examples in tf.data's shuffle buffer.", at_least=1),
    Key("cache", False, bool, "Keep the encoded examples in memory after their first read."),
    Key(
        "batch_size",
        64,
        int,
        "Global batch, split across all devices of all processes.",
        at_least=1,
    ),
    Key("num_train_steps", 160_000, int, "Training steps.", at_least=1),
    Key("learning_rate", 0.1, float, "Peak learning rate.", above=0),
    Key(
        "lr_boundaries",
        (64_000, 96_000),
        tuple,
        "Steps after warmup at which the piecewise lr is divided by 10; increasing.",
        above=0,
        item=int,
    ),
    Key("warmup_steps", 0, int, "Linear warmup steps; fewer than num_train_steps.", at_least=0),
    Key("scale_lr_with_batch", False, bool, "lr * batch_size / base_batch_size (linear rule)."),
    Key("base_batch_size", 64, int, "The batch size learning_rate is given for.", at_least=1),
    Key("momentum", 0.9, float, "Nesterov momentum.", at_least=0, below=1),
    Key("weight_decay", 1e-4, float, "Weight decay (added to the gradient).", at_least=0),
    # Options of the modern recipe, off by default (docs/training.md, "Modern recipe options").
    Key(
        "lr_schedule",
        "piecewise",
        str,
        "'cosine': warmup_steps, then cosine decay to 0.",
        choices=LR_SCHEDULES,
    ),
    Key("decay_norm_and_bias", True, bool, "False: weight decay on conv/dense kernels only."),
    Key("mixup_alpha", 0.0, float, "Mixup with Beta(alpha, alpha) weights; 0 = off.", at_least=0),
    Key("cutmix_alpha", 0.0, float, "CutMix; with mixup too, one at random each step.", at_least=0),
    Key(
        "mix_off_last_steps",
        0,
        int,
        "Train the last steps without mixing; at most num_train_steps.",
        at_least=0,
    ),
    Key("label_smoothing", 0.0, float, "Label smoothing of the targets.", at_least=0, below=1),
    Key("random_erasing", 0.0, float, "Chance of erasing a rectangle.", at_least=0, at_most=1),
    Key("ema_decay", 0.0, float, "EMA of weights and BN statistics; 0 = off.", at_least=0, below=1),
    Key(
        "accumulate_steps",
        1,
        int,
        "Micro-batches per device batch, one update; divides the per-device batch.",
        at_least=1,
    ),
    Key("dtype", "float32", str, "Compute dtype; parameters stay float32.", choices=DTYPES),
    Key("skip_nonfinite", False, bool, "Drop updates with a non-finite loss or gradient."),
    Key("parallelism", "shard_map", str, "How the step runs on the devices.", choices=PARALLELISM),
    Key(
        "seed",
        0,
        int,
        "Seeds the initial weights, data order and augmentation.",
        at_least=0,
        below=2**32,
    ),
    Key("attention_images", 4, int, "Eval images whose masks go to TensorBoard.", at_least=0),
    Key("log_every_steps", 100, int, "Steps between metric lines.", at_least=1),
    Key("eval_every_steps", 4_000, int, "Steps between evaluations.", at_least=1),
    Key("checkpoint_every_steps", 4_000, int, "Steps between checkpoints.", at_least=1),
    Key(
        "keep_checkpoints",
        3,
        int,
        "The latest checkpoints kept; the best by eval top-1 is kept as well.",
        at_least=1,
    ),
    # Multi-host: jax.distributed.initialize(coordinator_address, num_processes, process_id).
    # Leave unset on Cloud TPU (auto-detected) or to read JAX's environment variables.
    Key("distributed", False, bool, "Call jax.distributed.initialize."),
    Key("coordinator_address", None, str, "host:port of process 0; None = auto."),
    Key("num_processes", None, int, "None = auto-detected.", at_least=1),
    Key("process_id", None, int, "This process; below num_processes; None = auto.", at_least=0),
)


def base() -> ml_collections.ConfigDict:
    """Every key the trainer reads, with its neutral default (``KEYS``)."""
    c = ml_collections.ConfigDict()
    for key in KEYS:
        if key.optional:
            c[key.name] = ml_collections.config_dict.placeholder(key.type)
        elif key.type is dict:
            c[key.name] = ml_collections.ConfigDict(key.default)
        else:
            c[key.name] = key.default
    return c


def cifar(model: str, dataset: str = "cifar10") -> ml_collections.ConfigDict:
    """The paper's CIFAR recipe for ``model`` (``docs/faithfulness.md`` §7.1)."""
    c = base()
    c.model, c.dataset = model, dataset
    return c


def imagenet(model: str, image_size: int = 224) -> ml_collections.ConfigDict:
    """The paper's ImageNet recipe for ``model`` (``docs/faithfulness.md`` §7.2)."""
    c = base()
    c.model, c.dataset, c.image_size = model, "imagenet2012", image_size
    c.batch_size = 256
    c.base_batch_size = 256
    c.num_train_steps = 530_000
    c.lr_boundaries = (200_000, 400_000, 500_000)
    c.shuffle_buffer = 10_000
    c.dtype = "bfloat16"
    c.log_every_steps = 200
    c.eval_every_steps = 10_000
    c.checkpoint_every_steps = 5_000
    return c


def cifar_modern(model: str, dataset: str = "cifar10") -> ml_collections.ConfigDict:
    """The modern CIFAR recipe for ``model``: where it comes from, what it reached and which
    settings are ours are in ``docs/training.md``, "The modern CIFAR recipe"."""
    steps_per_epoch = 50_000 // 256
    c = cifar(model, dataset)
    c.batch_size = 256
    c.learning_rate, c.base_batch_size, c.scale_lr_with_batch = 0.1, 64, True
    c.num_train_steps = 200 * steps_per_epoch
    c.lr_schedule = "cosine"
    c.warmup_steps = 5 * steps_per_epoch
    c.decay_norm_and_bias = False
    c.mixup_alpha = 1.0
    c.mix_off_last_steps = 10 * steps_per_epoch
    c.random_erasing = 0.5
    c.eval_every_steps = 10 * steps_per_epoch
    c.checkpoint_every_steps = 10 * steps_per_epoch
    return c


def fashion_mnist(model: str, epochs: int) -> ml_collections.ConfigDict:
    """The Fashion-MNIST recipe of ``experiments/fashion_mnist_*.py`` for ``model`` and
    ``epochs`` of 60,000 images (described in ``docs/fashion_mnist.md``, "The recipes"). Each
    experiment sets its warmup and how often it evaluates."""
    steps_per_epoch = 60_000 // 128
    c = cifar(model, "fashion_mnist")
    c.batch_size = 128
    c.learning_rate, c.base_batch_size, c.scale_lr_with_batch = 0.1, 128, True
    c.num_train_steps = epochs * steps_per_epoch
    c.lr_schedule = "cosine"
    c.weight_decay = 5e-4
    c.decay_norm_and_bias = False
    c.label_smoothing = 0.1
    c.shuffle_buffer = 60_000
    c.log_every_steps = 100
    c.checkpoint_every_steps = steps_per_epoch
    return c


def quickstart() -> ml_collections.ConfigDict:
    """A small attention network on cluttered digits: offline, minutes on a CPU.

    Attention-56 topology (modules 1-1-1) at 1/8 width. Its stem (7x7/2 conv, 3x3/2 pool)
    takes the 40x40 canvas to 10x10 before the first module: on 2 CPU cores full-resolution
    stages run ~6x slower for tiny channel counts, which are memory-bound.
    """
    c = base()
    c.model = "attention56"
    c.model_overrides.widths = (8, 16, 32, 32)  # bottlenecks; outputs 32/64/128/128 channels
    c.model_overrides.stem_width = 16
    c.dataset = "cluttered_digits"
    c.shuffle_buffer = 20_000
    c.batch_size = 64
    c.num_train_steps = 2_200
    c.lr_boundaries = (1_500, 1_900)
    c.warmup_steps = 100
    c.log_every_steps = 50
    c.eval_every_steps = 500
    c.checkpoint_every_steps = 500
    return c
