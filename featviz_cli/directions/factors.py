"""Neuron groups: a layer's activations over a folder factorized into N directions (Olah et al. 2018).

The sample of activation vectors (``sample``) is factorized with scikit-learn's NMF, PCA or
FastICA (Lucid's ``ChannelReducer``); each factor is a direction in activation space, a row of
the N x C matrix that a dictionary sweep renders, and its weight at each position of an image
is the factor's spatial map there.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import SpecError

METHODS = ("nmf", "pca", "ica")


@dataclass
class Factors:
    """N directions (N, C) and the fitted decomposition that maps activation vectors to their weights."""

    method: str
    directions: np.ndarray
    model: Any
    facts: dict[str, Any]

    def weights(self, vectors: np.ndarray) -> np.ndarray:
        """Each vector's weight on each factor: (P, C) -> (P, N)."""
        w = self.model.transform(np.asarray(vectors, dtype=np.float64))
        return w * self.facts.get("signs", np.ones(w.shape[1]))

    def maps(self, acts: torch.Tensor) -> np.ndarray:
        """One image's activations (C, H, W) as factor maps (N, H, W)."""
        c, h, w = acts.shape
        return self.weights(acts.permute(1, 2, 0).reshape(-1, c).numpy()).T.reshape(-1, h, w)


def _sklearn() -> Any:
    try:
        import sklearn.decomposition as dec
    except ImportError:
        raise SpecError("--method", "factors need scikit-learn: pip install 'featviz[factors]'.") from None
    return dec


def fit_factors(vectors: torch.Tensor | np.ndarray, n: int, method: str = "nmf", *, seed: int = 0) -> Factors:
    """Factorize (P, C) activation vectors into ``n`` directions with ``method`` (nmf, pca or ica)."""
    x = np.asarray(vectors, dtype=np.float64)
    positions, channels = x.shape
    if method not in METHODS:
        raise SpecError("--method", f"{method!r} is not one of {', '.join(METHODS)}.")
    if n < 1 or n > channels:
        raise SpecError("--n", f"{n} factors for a layer of {channels} channels; ask for 1 to {channels}.")
    if n > positions:
        raise SpecError("--n", f"{n} factors from {positions} sampled positions; sample more (--samples, --crops) "
                        "or ask for fewer factors.")
    dec = _sklearn()
    facts: dict[str, Any] = {"positions": positions, "channels": channels}
    if method == "nmf":
        low = float(x.min())
        if low < 0:
            raise SpecError("--method", f"NMF needs non-negative activations, but this layer has values down to "
                            f"{low:.3g}; choose a layer after a ReLU, or --method pca or ica.")
        model = dec.NMF(n_components=n, init="nndsvda", random_state=seed, max_iter=1000)
        model.fit(x)
        directions = model.components_
        facts["reconstruction_error"] = float(model.reconstruction_err_)
    elif method == "pca":
        model = dec.PCA(n_components=n, random_state=seed)
        model.fit(x)
        directions = model.components_
        facts["explained_variance_ratio"] = [float(v) for v in model.explained_variance_ratio_]
    else:
        model = dec.FastICA(n_components=n, random_state=seed, whiten="unit-variance", max_iter=2000, tol=1e-3)
        model.fit(x)
        directions = model.mixing_.T  # each source's direction in activation space
    if method != "nmf":  # the sign of a component is arbitrary: make each factor's large weights positive
        w = model.transform(x)
        signs = np.where((w ** 3).mean(0) < 0, -1.0, 1.0)
        directions = directions * signs[:, None]
        facts["signs"] = signs
    return Factors(method, np.ascontiguousarray(directions, dtype=np.float32), model, facts)
