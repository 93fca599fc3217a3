"""Dataset examples: the natural images that excite each unit most, beside its visualization.

The package, by stage: ``dataset`` (counting, decoding and streaming the folder's images,
the network's view of each), ``ranking`` (streaming top-k per unit), ``receptive_field``
(the crop size, from input gradients), ``checkpoint`` (the resumable pass's fingerprint
and state), ``pass_`` (the pass, :func:`collect`), ``write`` (images, ``examples.json`` and pages),
``run`` (a spec in, files out) and ``layout`` (the names under OUT, read by the sweep gallery).

The public API is imported lazily, so that reading ``layout`` (the gallery does) does not load torch::

    from featviz_cli.examples import collect, write_examples
    result = collect(model, info, ["layer"], "photos/")
    write_examples(result, "out/")
"""
from __future__ import annotations

from typing import Any

__all__ = ["collect", "run_examples", "write_examples"]


def __getattr__(name: str) -> Any:
    if name == "collect":
        from .pass_ import collect

        return collect
    if name == "run_examples":
        from .run import run_examples

        return run_examples
    if name == "write_examples":
        from .write import write_examples

        return write_examples
    raise AttributeError(name)
