"""Benchmarks: featviz against torch-lucent and against the bare network (``python -m benchmarks.compare``)."""
