"""featviz_cli/directions/factors.py: NMF / PCA / ICA of activation vectors, planted factors recovered."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from featviz_cli.directions.factors import fit_factors
from featviz_cli.errors import SpecError


def _planted(n: int = 4, channels: int = 24, positions: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative activations that are sparse non-negative mixtures of ``n`` planted non-negative factors."""
    rng = np.random.default_rng(seed)
    factors = rng.random((n, channels)) * (rng.random((n, channels)) < 0.4)
    weights = rng.exponential(1.0, (positions, n)) * (rng.random((positions, n)) < 0.5)
    return weights @ factors, factors


def _cosines(found: np.ndarray, planted: np.ndarray) -> np.ndarray:
    a = found / np.linalg.norm(found, axis=1, keepdims=True)
    b = planted / np.linalg.norm(planted, axis=1, keepdims=True)
    return b @ a.T  # (planted, found)


def test_nmf_recovers_planted_non_negative_factors() -> None:
    x, planted = _planted()
    f = fit_factors(torch.from_numpy(x).float(), 4, "nmf")
    assert f.directions.shape == (4, 24) and (f.directions >= 0).all()
    cos = _cosines(f.directions, planted)
    assert (cos.max(1) > 0.98).all(), cos  # each planted factor has a recovered one in its direction
    assert len({int(i) for i in cos.argmax(1)}) == 4  # a different one for each
    maps = f.maps(torch.from_numpy(x[:6].T.reshape(24, 2, 3)).float())
    assert maps.shape == (4, 2, 3) and (maps >= 0).all()


@pytest.mark.parametrize("method", ["pca", "ica"])
def test_pca_and_ica_give_n_directions_with_positive_large_weights(method: str) -> None:
    x, _ = _planted()
    f = fit_factors(x, 3, method)
    assert f.directions.shape == (3, 24)
    w = f.weights(x)
    assert w.shape == (3000, 3) and ((w ** 3).mean(0) >= 0).all()
    if method == "pca":
        assert len(f.facts["explained_variance_ratio"]) == 3


def test_bad_requests_are_one_line_errors_with_the_fix() -> None:
    x, _ = _planted(positions=10)
    with pytest.raises(SpecError, match=r"^--n: 30 factors for a layer of 24 channels; ask for 1 to 24\."):
        fit_factors(x, 30)
    with pytest.raises(SpecError, match=r"^--n: 12 factors from 10 sampled positions; sample more"):
        fit_factors(x, 12)
    with pytest.raises(SpecError, match=r"^--method: NMF needs non-negative activations, .* --method pca or ica"):
        fit_factors(x - 1, 2)
    with pytest.raises(SpecError, match=r"^--method: 'svd' is not one of nmf, pca, ica"):
        fit_factors(x, 2, "svd")
