"""Faithfulness of a sweep's renders: how strongly each drives its unit compared with its dataset examples,
and whether the network processes it like natural images on the way to the unit (``featviz faithfulness``).

By stage: ``layout`` (the files under OUT; torch-free, read by the gallery), ``measure`` (the numbers
for one unit from pooled activations) and ``run`` (the resumable step over a sweep directory).
"""

from .layout import FAITHFULNESS_DIR, layer_file, read_document, read_layer


def __getattr__(name: str) -> object:
    """``run_faithfulness``, its report and ``THRESHOLD``, imported on first use (they import torch; the
    layout, which the gallery reads, does not)."""
    if name in ("run_faithfulness", "FaithfulnessReport"):
        from . import run

        return getattr(run, name)
    if name == "THRESHOLD":
        from .measure import THRESHOLD

        return THRESHOLD
    raise AttributeError(name)


__all__ = ["FAITHFULNESS_DIR", "THRESHOLD", "FaithfulnessReport", "layer_file", "read_document", "read_layer",
           "run_faithfulness"]
