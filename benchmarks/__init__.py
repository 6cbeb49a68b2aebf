"""The performance scripts, importable so the book's performance chapter calls their measurements.

Each module is both a script (``python benchmarks/bench_pruning.py``) and a library of measurement
functions that return plain rows (dicts), for instance::

    from benchmarks.bench_divergence import measure_student_t
    from benchmarks.bench_experiments import measure_engines
    from benchmarks.bench_pruning import run_case

The chapter ``book/performance.ipynb`` calls exactly these functions, so the numbers it shows are
measured by the same code as the scripts print.
"""
