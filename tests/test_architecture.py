"""The package's layering rules (docs/architecture.md), checked on every module's imports.

Layers, lowest first: base (``configs``, ``checks``), ``models/``, ``data/``, ``analysis/``,
``training/``, then the commands at the package root. A module imports only its own layer
or lower ones, imports form no cycle, no library module imports a command, TensorFlow is
imported only in ``data/`` (through ``data/tf_runtime.py``) and by ``export``, matplotlib only
where pictures are drawn. The layer table of docs/architecture.md names each module in its
layer. The last test runs the core with TensorFlow unimportable.
"""

import ast
import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from absl import flags

from helpers import ROOT

PACKAGE = Path(ROOT) / "ran_jax"
LAYERS = {"base": 0, "models": 1, "data": 2, "analysis": 3, "training": 4, "commands": 5}
BASE = {"ran_jax", "ran_jax.configs", "ran_jax.checks"}
# Commands may import these data modules; TensorFlow enters through them.
TENSORFLOW_MODULES = ("tensorflow", "tensorflow_datasets")
TENSORFLOW_FREE_DATA = {"ran_jax.data", "ran_jax.data.info"}


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _layer(module: str) -> str:
    if module in BASE:
        return "base"
    parts = module.split(".")
    in_a_subpackage = len(parts) > 2 or MODULES[module].name == "__init__.py"
    return parts[1] if in_a_subpackage else "commands"


def _imports(module: str) -> set[str]:
    """Every module ``module`` imports, anywhere in its body: ran_jax modules by full name,
    others by their top-level package."""
    tree = ast.parse(MODULES[module].read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{module}: relative import"
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            if name.startswith("ran_jax"):
                while name not in MODULES:  # ran_jax.x.function -> ran_jax.x
                    name = name.rpartition(".")[0]
                found.add(name)
            else:
                found.add(name.split(".")[0])
    found.discard(module)
    return found


GRAPH = {m: {i for i in _imports(m) if i in MODULES} for m in MODULES}


def _closure(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        for child in GRAPH[todo.pop()] - seen:
            seen.add(child)
            todo.append(child)
    return seen


def test_every_module_sits_in_a_known_layer():
    assert {_layer(m) for m in MODULES} == set(LAYERS)
    assert {"ran_jax.main", "ran_jax.export", "ran_jax.benchmark"} <= {
        m for m in MODULES if _layer(m) == "commands"
    }


def _documented_modules() -> dict[str, set[str]]:
    """The ``name.py`` entries of each layer's row in docs/architecture.md's layer table."""
    layers_by_number = {number: layer for layer, number in LAYERS.items()}
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    table = text.split("\n## What each layer holds\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0][:1].isdigit():
            continue  # the header, its rule, the text after the table
        layer = layers_by_number[int(cells[0].split()[0])]
        assert layer not in rows, f"docs/architecture.md: two rows for the layer {layer}"
        rows[layer] = set(re.findall(r"`(\w+)\.py`", cells[1]))
    return rows


def test_the_layer_table_of_the_docs_names_each_module_in_its_layer():
    """docs/architecture.md, "What each layer holds", lists every module (``__init__.py`` files
    aside) in the row of the layer this file puts it in, and no module that is not there."""
    documented = _documented_modules()
    assert sorted(documented) == sorted(LAYERS), "docs/architecture.md: one table row per layer"
    problems = []
    for layer, names in sorted(documented.items()):
        on_disk = {
            MODULES[m].stem
            for m in MODULES
            if _layer(m) == layer and MODULES[m].name != "__init__.py"
        }
        if missing := sorted(on_disk - names):
            problems.append(f"{layer}: missing from the table: {missing}")
        if extra := sorted(names - on_disk):
            problems.append(f"{layer}: in the table but not in the layer: {extra}")
    assert problems == [], "docs/architecture.md, What each layer holds: " + "; ".join(problems)


def test_no_import_cycle():
    cycles = sorted(m for m in MODULES if m in _closure(m))
    assert cycles == [], f"modules on an import cycle: {cycles}"


def test_a_module_imports_only_its_own_or_lower_layers():
    upward = sorted(
        f"{m} -> {i}" for m in MODULES for i in GRAPH[m] if LAYERS[_layer(i)] > LAYERS[_layer(m)]
    )
    assert upward == []


def test_no_command_is_imported_by_another_module():
    shared = {"ran_jax.cli"}
    commands = {m for m in MODULES if _layer(m) == "commands"} - shared
    importers = sorted(f"{m} -> {i}" for m in MODULES for i in GRAPH[m] & commands)
    assert importers == []


def test_tensorflow_only_in_data_and_export():
    direct = sorted(m for m in MODULES if _imports(m) & set(TENSORFLOW_MODULES))
    # tf_runtime sets TensorFlow up once, for all users; export reads its StableHLO version
    # too, after importing tf_runtime.
    assert direct == ["ran_jax.data.tf_runtime", "ran_jax.export"]
    assert "ran_jax.data.tf_runtime" in GRAPH["ran_jax.export"]
    allowed = {m for m in MODULES if _layer(m) in ("data", "commands")} - TENSORFLOW_FREE_DATA
    through = sorted(
        m for m in MODULES if m not in allowed and "ran_jax.data.tf_runtime" in _closure(m)
    )
    assert through == [], "these import TensorFlow through data/; pass a data source instead"


def test_matplotlib_only_where_pictures_are_drawn():
    assert sorted(m for m in MODULES if "matplotlib" in _imports(m)) == [
        "ran_jax.analysis.pictures"
    ]


@pytest.mark.slow
def test_the_core_trains_and_benchmarks_with_tensorflow_unimportable(tmp_path):
    """Models, analysis and training import, the training loop trains 2 steps on synthetic
    data, and ``python -m ran_jax.benchmark`` runs, on a machine without TensorFlow."""
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "tests", "helpers", "without_tensorflow.py"),
            str(tmp_path / "run"),
            "--",
            # The eval step: the same imports, and a compile several times shorter.
            *("--model=cifar_attention56", "--batch_size=2", "--mode=eval", "--steps=2"),
            *("--warmup=1", "--json"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    *_, benchmark_line, summary_line = proc.stdout.strip().splitlines()
    assert json.loads(summary_line)["trained_steps"] == 2
    report = json.loads(benchmark_line)
    assert report["model"] == "cifar_attention56" and report["mode"] == "eval"
    assert report["images_per_second"] > 0
    assert (tmp_path / "run" / "metrics.jsonl").exists()
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == ["2"]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m) == "commands"))
def test_importing_a_command_defines_no_flag(module):
    """Flags are defined once, by the command that runs (``cli`` holds the shared ones): no
    top-level statement defines one, and running the module's top level defines none."""
    tree = ast.parse(MODULES[module].read_text())
    top_level_calls = [
        node
        for node in tree.body
        if isinstance(node, (ast.Expr, ast.Assign)) and "DEFINE" in ast.unparse(node)
    ]
    assert top_level_calls == []
    if module in sys.modules:  # imported by an earlier test: run its top level again
        importlib.reload(sys.modules[module])
    else:
        importlib.import_module(module)
    owners = flags.FLAGS.flags_by_module_dict()
    assert [name for name in owners if name.startswith("ran_jax")] == []
