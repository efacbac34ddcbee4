r"""One prepared run on an accelerator: correctness, train-step speed, the PyTorch peer, input.

    python benchmarks/accelerator_suite.py --out=DIR [--budget_s=SECONDS] [--cases=PATTERNS]
    python benchmarks/accelerator_suite.py --out=DIR --tiny      # every case, toy sizes, CPU
    python benchmarks/accelerator_suite.py --list [--tiny]       # the cases, in order
    python benchmarks/accelerator_suite.py --summarize DIR1 DIR2 --out=DIR   # merge runs

Cases, most important first (issue 17; ``--list`` prints them; ``cases.py`` holds the grid):

1. ``correctness/*``: ``pytest`` on the model and train-step tests that need no TensorFlow,
   with JAX on the accelerator (``correctness/pytest``, run beside the next three); then
   ``attention56`` at 224, same parameters and inputs on the accelerator and on the host CPU
   (float32 there): float32 logits within the tests' tolerance at HIGHEST matmul precision
   and within a TF32 bound at the default one (``logits-f32``), bfloat16 logits within the
   bf16 bound of ``tests/models/test_network.py`` (``logits-bf16``), and two steps of the
   trainer's step, float32 at HIGHEST precision and bfloat16: the first loss and the first
   parameter update against the CPU's (``train-loss``). The bounds are the ``*_BOUND``
   constants of ``correctness.py``.
2. JAX train-step speed, ``ran_jax.training.step_benchmark.run`` (the trainer's step, bf16
   compute, f32 parameters, one device): ``attention56`` and ``attention92`` at 224, batch
   256/128/64, remat off and on; ``cifar_attention92`` at 32, batch 1024 and 256; the eval
   step at 224, and at 320 for ``attention92``; ``pmap`` once against the default
   ``shard_map``.
3. The PyTorch peer, ``benchmarks/torch_reference.py`` on the same device at the same sizes,
   bf16 autocast and channels-last, eager and ``torch.compile`` (inductor), for every JAX
   case without remat; ``summary.*`` gives JAX/PyTorch per case.
4. ``pipeline/*``: ``ran_jax.data.pipeline_timing`` on this host's cores where TensorFlow is
   importable; elsewhere a recorded skip with the per-core figure measured on the 2-core CPU
   machine of ``docs/performance.md`` and the cores that feeding the fastest measured step
   would take.

Each case is appended to ``DIR/results.jsonl`` (one JSON object, flushed) as soon as it ends,
so a run cut short keeps what it measured; a case that fails is a record with its error, and
the suite goes on. Every record names the case, what it ran and on what (model, batch, image
size, dtype, remat, parallelism, mode, framework, versions, device kind), its ``status``
(``ok``, ``passed``, ``failed``, ``error``, ``skipped``) and figures. A case whose estimated
time no longer fits ``--budget_s`` is recorded as skipped, and the cheaper ones after it still
run; at the budget the running case is stopped. At the end ``summary.json`` and
``summary.md`` give the JAX/PyTorch ratios, the issue's targets, and the ``--cases`` value
that reruns what was skipped or failed. ``suite.log`` holds the workers' output.

JAX and PyTorch run in separate worker processes (the command with ``--worker``), one after
the other, so each has the device to itself and a crash costs one case. ``--tiny`` runs every
case at toy sizes on the CPU with TensorFlow unimportable (``tests/commands/
test_accelerator_suite.py`` runs it; ``torch.compile`` uses the ``aot_eager`` backend there,
``--inductor`` inductor); ``--no_tensorflow`` blocks TensorFlow in a full run. By its priors
the whole grid takes about 52 minutes on one H200; ``--budget_s`` (default: no limit) splits
it into shorter runs, each skipping what no longer fits, and ``--summarize`` merges their
``results.jsonl`` into one summary.

The modules, one job each: ``cases.py`` (the grid and its time estimates), ``records.py``
(``results.jsonl`` and the records' common fields), ``scheduler.py`` (the worker processes
and the budget), ``pytest_case.py`` (``correctness/pytest``), ``worker.py`` (one worker
process), ``correctness.py`` (the comparisons with the host CPU), ``measure.py`` (the JAX
step, the PyTorch peer and the input pipeline of one case), ``report.py`` (``summary.json``
and ``summary.md``), ``run.py`` (the command line; ``benchmarks/accelerator_suite.py`` starts
it).

On a GPU machine (``docs/performance.md``, "GPU: the accelerator suite", lists what it needs
installed: JAX with CUDA, PyTorch with CUDA, pytest, ml-collections; TensorFlow is optional)::

    pip install -e '.[test]' 'jax[cuda12]' torch
    python benchmarks/accelerator_suite.py --out=gpu_results
"""
