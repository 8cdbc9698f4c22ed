"""Benchmark B10 — interactive forget requests: intent precision/recall on the blind held-out and the development message sets, seconds per request.

    python benchmarks/b10_interactive.py --part intent
    python benchmarks/b10_interactive.py --part timing --editor stamp --seeds 0 1 2
"""

from lightning_unlearn.benchmarking.b10 import main

if __name__ == "__main__":
    main()
