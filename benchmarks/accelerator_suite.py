r"""The accelerator suite: correctness, train-step speed, the PyTorch peer, input.

    python benchmarks/accelerator_suite.py --out=DIR [--budget_s=SECONDS] [--cases=PATTERNS]
    python benchmarks/accelerator_suite.py --out=DIR --tiny      # every case, toy sizes, CPU
    python benchmarks/accelerator_suite.py --list [--tiny]       # the cases, in order
    python benchmarks/accelerator_suite.py --summarize DIR1 DIR2 --out=DIR   # merge runs

The suite is the package ``benchmarks/gpu_suite/`` (its ``__init__.py`` describes the cases,
records and budget); this file starts its command line, ``gpu_suite.run``.
"""

from gpu_suite.run import main

if __name__ == "__main__":
    main()
