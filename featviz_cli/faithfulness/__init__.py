"""Faithfulness of a sweep's renders: how strongly each drives its unit compared with its dataset examples,
and whether the network processes it like natural images on the way to the unit (``featviz faithfulness``).

By stage: ``layout`` (the files under OUT; torch-free, read by the gallery), ``measure`` (the numbers
for one unit from pooled activations) and ``run`` (the resumable step over a sweep directory).
"""
