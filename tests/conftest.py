"""Shared fixtures: two threads (CI has 2 cores), a tiny registered model, spec helpers."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch

torch.set_num_threads(2)

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def tiny_spec() -> dict[str, Any]:
    """A minimal valid spec dict on the registered ``test_tiny`` model, tiny sizes."""
    return {
        "model": {"name": "test_tiny"},
        "objective": {"type": "channel", "layer": "act2", "unit": 3},
        "param": {"size": 16},
        "steps": 4,
        "device": "cpu",
    }


@pytest.fixture
def tiny_model():
    """The ``test_tiny`` model and its ModelInfo."""
    from featviz_cli.config import ModelSpec
    from featviz_cli.models import load_model

    return load_model(ModelSpec(name="test_tiny"))


def featviz_cmd() -> list[str]:
    """The command that runs the CLI in a subprocess with this interpreter."""
    return [sys.executable, "-m", "featviz_cli"]
