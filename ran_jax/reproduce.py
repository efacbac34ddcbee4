r"""The paper's ablation studies at a scale one CPU can afford (paper section 4.1).

    python -m ran_jax.reproduce --study=arl_vs_nal --seeds=2 --workdir=DIR
    python -m ran_jax.reproduce --study=mask_type --seeds=2 --workdir=DIR --max_runs=3
    python -m ran_jax.reproduce --study=arl_vs_nal --dataset=fashion_mnist --workdir=DIR

The studies, their runs and their tables are described in ``training/studies.py`` and
``docs/reproduction.md``.
"""

from __future__ import annotations

from absl import app, flags

from ran_jax import cli
from ran_jax.data import input_pipeline
from ran_jax.training.studies import SETTINGS, STUDIES, cell_text, run_study


def _show(r: dict) -> None:
    print(f"{r['study']}: trained {r['trained_now']} run(s) now; table in {r['results']}")
    for row in r["rows"]:
        error = f"{cell_text(row['mean'])} ± {cell_text(row['std'])}"
        print(f"  {row['cell']:<22} {row['runs']} run(s)  error {error} %")


def _define_flags() -> None:
    flags.DEFINE_string("study", None, f"One of: {', '.join(sorted(STUDIES))}.", required=True)
    flags.DEFINE_string("workdir", None, "Directory of the study's runs.", required=True)
    flags.DEFINE_integer("seeds", 2, "Seeds per cell.")
    flags.DEFINE_integer("max_runs", None, "Train at most this many runs now (default: all).")
    flags.DEFINE_enum(
        "dataset",
        "cluttered_digits",
        sorted(SETTINGS),
        "Where the studies run: cluttered digits with the quick-start network, or "
        "Fashion-MNIST with the paper's CIFAR networks.",
    )
    flags.DEFINE_float(
        "width",
        None,
        "Fashion-MNIST: the networks' bottleneck widths as a fraction of the paper's "
        f"(default {SETTINGS['fashion_mnist'].width:g}).",
    )
    flags.DEFINE_string("data_dir", None, "tfds data_dir of the data set.")
    flags.DEFINE_bool("smoke", False, "3-step runs of a tiny network: checks the machinery.")
    cli.define_json()


def main(argv: list[str]) -> None:
    f = flags.FLAGS
    cli.report(
        argv,
        lambda: run_study(
            f.study,
            f.workdir,
            input_pipeline.DataSet,
            f.seeds,
            f.max_runs,
            f.smoke,
            f.data_dir,
            f.dataset,
            f.width,
        ),
        _show,
        progress=True,
    )


if __name__ == "__main__":
    _define_flags()
    app.run(main)
