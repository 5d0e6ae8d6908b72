"""coir.eval.benchmarks — one module per benchmark (cirr.py, fashioniq.py, lasco.py, …), each a
Benchmark subclass registered once with @register; base.py holds the interface and the registry
(get_benchmark(name), benchmark_names()), which imports every module of this package.
"""

from coir.eval.benchmarks.base import Benchmark, benchmark_names, get_benchmark, register

__all__ = ["Benchmark", "benchmark_names", "get_benchmark", "register"]
