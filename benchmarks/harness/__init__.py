"""The benchmark runner's parts; benchmarks/run.py is the entry point."""
