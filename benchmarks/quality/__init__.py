"""The question set of the quality benchmark (``benchmarks/bench_quality.py``): corpora, questions, metrics.

Imported as ``quality`` with ``benchmarks/`` on ``sys.path`` (pysbd installs a ``benchmarks`` package of its
own, which would shadow this folder as ``benchmarks.quality``).
"""
