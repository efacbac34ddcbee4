"""The suite's cases, most important first, at a full run's sizes or ``--tiny``'s toy ones,
and the time each is expected to take."""

from __future__ import annotations

import dataclasses
import fnmatch
from typing import Any


@dataclasses.dataclass(frozen=True)
class Sizes:
    """The sizes of a full run, or of ``--tiny``'s toy run (one batch per axis)."""

    imagenet_models: tuple[str, ...] = ("attention56", "attention92")  # the deepest: last
    imagenet_size: int = 224
    large_size: int = 320
    imagenet_batches: tuple[int, ...] = (256, 128, 64)
    cifar_size: int = 32
    cifar_batches: tuple[int, ...] = (1024, 256)
    eval_batch: int = 256
    imagenet_overrides: tuple = ()  # get_model overrides, as (key, value) pairs
    cifar_overrides: tuple = ()
    imagenet_classes: int | None = None  # None: the model's default (1000, CIFAR 10)
    steps: int = 10
    warmup: int = 3
    compare_size: int = 224  # correctness: attention56 at this size and batch
    compare_batch: int = 4
    pytest_workers: int = 8
    pipeline: tuple = (("imagenet2012", 256, 12, 3), ("cifar10", 256, 100, 10))
    compile_backend: str = "inductor"  # torch.compile's backend for the peer


FULL = Sizes()
TINY = Sizes(
    # attention92 at the overrides below is attention56's toy network: its cases would
    # time the same network again.
    imagenet_models=("attention56",),
    imagenet_size=32,
    large_size=40,
    imagenet_batches=(2,),
    cifar_size=16,
    cifar_batches=(4,),
    eval_batch=2,
    # One Attention Module, in the stage whose mask pools once: the cheapest to compile.
    # Its trunk and pre/post units left out (t = p = 0): a third fewer layers to compile.
    imagenet_overrides=(
        ("widths", (2, 2, 4, 4)),
        ("stem_width", 4),
        ("modules", (0, 0, 1, 0)),
        ("p", 0),
        ("t", 0),
    ),  # fmt: skip
    cifar_overrides=(("widths", (2, 2, 2)), ("modules", (0, 0, 1)), ("p", 0), ("t", 0)),
    imagenet_classes=10,
    steps=2,
    warmup=1,
    # Toy widths and a batch of 2 at 32 px leave 2 values per channel to the last
    # BatchNorms, whose bf16 error is then noise; 8 images at 64 px leave 32.
    compare_size=64,
    compare_batch=8,
    pytest_workers=0,
    pipeline=(("imagenet2012", 4, 2, 1), ("cifar10", 8, 2, 1)),
    # On a CPU inductor generates C++ (not the GPU's Triton) and builds each kernel with g++:
    # its first toy graph cost 32 s of a core, a third of the whole dry run. So torch.compile
    # runs with aot_eager here: dynamo's graph capture and AOTAutograd's backward, which the
    # GPU's inductor starts from. --inductor compiles with inductor.
    compile_backend="aot_eager",
)


@dataclasses.dataclass(frozen=True)
class Case:
    """One case of the grid: what it runs, and its estimated time before one like it ran."""

    name: str
    kind: str  # pytest | compare | jax | torch | pipeline
    impl: str = ""  # jax, jax-remat, jax-pmap, torch-eager, torch-compile
    mode: str = "train"
    model: str = ""
    image_size: int = 0
    batch_size: int = 0
    prior_s: float = 60.0  # estimated seconds on an H200 until a like case is measured

    @property
    def remat(self) -> bool:
        return self.impl == "jax-remat"

    @property
    def parallelism(self) -> str:
        return "pmap" if self.impl == "jax-pmap" else "shard_map"

    @property
    def peer_key(self) -> tuple:
        return (self.mode, self.model, self.image_size, self.batch_size)

    @property
    def family(self) -> str:
        return f"{self.kind}:{self.impl}:{self.mode}:{self.model}"


def _speed(mode: str, model: str, size: int, batch: int, impl: str, prior: float) -> Case:
    """A speed case of JAX (``impl`` jax, jax-remat, jax-pmap) or of the PyTorch peer."""
    kind = "torch" if impl.startswith("torch") else "jax"
    name = f"{mode}/{model}/{size}/b{batch}/{impl}"
    return Case(name, kind, impl, mode, model, size, batch, prior)


# Seconds on an H200 before a like case is measured, by implementation (or eval) and model.
_PRIOR_S = {
    ("jax", "attention56"): 60,
    ("jax", "attention92"): 90,
    ("jax-remat", "attention56"): 75,
    ("jax-remat", "attention92"): 110,
    ("eval", "attention56"): 30,
    ("eval", "attention92"): 45,
}


def cases(sizes: Sizes) -> list[Case]:
    """Every case of a run, most important first."""
    out = [
        Case("correctness/pytest", "pytest", prior_s=150),
        Case("correctness/logits-f32", "compare", model="attention56", prior_s=120),
        Case("correctness/logits-bf16", "compare", model="attention56", prior_s=30),
        Case("correctness/train-loss", "compare", model="attention56", prior_s=90),
    ]
    s, c = sizes.imagenet_size, sizes.cifar_size
    models = sizes.imagenet_models
    big, rest = sizes.cifar_batches[:1], sizes.cifar_batches[1:]

    def imagenet(impl: str, model_list: tuple[str, ...]) -> list[Case]:
        return [
            _speed("train", m, s, b, impl, _PRIOR_S[impl, m])
            for m in model_list
            for b in sizes.imagenet_batches
        ]

    jax_cases = (
        imagenet("jax", models[:1])
        + [_speed("train", "cifar_attention92", c, b, "jax", 45) for b in big]
        + imagenet("jax", models[1:])
        + [_speed("train", "cifar_attention92", c, b, "jax", 45) for b in rest]
        + imagenet("jax-remat", models)
        + [_speed("eval", m, s, sizes.eval_batch, "jax", _PRIOR_S["eval", m]) for m in models]
        + [
            _speed("eval", models[-1], sizes.large_size, sizes.eval_batch, "jax", 45),
            _speed("train", models[0], s, sizes.imagenet_batches[0], "jax-pmap", 60),
        ]
    )
    out += jax_cases
    for j in jax_cases:
        if j.impl == "jax":
            compile_prior = {"attention56": 120, "attention92": 180}.get(j.model, 90)
            if j.mode == "eval":
                compile_prior //= 2
            out.append(_speed(j.mode, j.model, j.image_size, j.batch_size, "torch-eager", 15))
            out.append(
                _speed(j.mode, j.model, j.image_size, j.batch_size, "torch-compile", compile_prior)
            )
    out += [Case(f"pipeline/{d}", "pipeline", prior_s=30) for d, *_ in sizes.pipeline]
    return out


def select(all_cases: list[Case], patterns: str | None) -> list[Case]:
    """The cases whose names match one of the comma-separated glob ``patterns`` (all: None)."""
    if not patterns:
        return list(all_cases)
    pats = [p.strip() for p in patterns.split(",") if p.strip()]
    return [c for c in all_cases if any(fnmatch.fnmatchcase(c.name, p) for p in pats)]


def overrides(sizes: Sizes, model: str) -> dict[str, Any]:
    """``model``'s ``get_model`` overrides at these sizes."""
    return dict(sizes.cifar_overrides if model.startswith("cifar") else sizes.imagenet_overrides)


def classes(sizes: Sizes, model: str) -> int | None:
    """``model``'s classes at these sizes; None: the model's default."""
    return None if model.startswith("cifar") else sizes.imagenet_classes


def estimate(case: Case, observed: dict[str, float], tiny: bool) -> float:
    """``case``'s seconds: as measured for its family, else 1.3 x the slowest of its kind and
    mode, else its prior; 0 with ``--tiny``, which runs every case."""
    if tiny:  # every case runs; only the hard stop at the budget applies
        return 0.0
    if case.family in observed:
        return observed[case.family]
    like = [v for k, v in observed.items() if k.split(":")[::2] == case.family.split(":")[::2]]
    if like:  # same kind and mode, other implementation or model
        return 1.3 * max(like)
    return case.prior_s
