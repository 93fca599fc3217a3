"""Objectives: what to maximize, as an algebra of named, self-describing terms (see ``base``)."""
from __future__ import annotations

from .base import IMAGE, Acts, Objective, Probe
from .batch import alignment, blend, diversity, frame_weights, gram_cosine
from .inversion import activation_match
from .penalties import distance_to, feature_distance, lp_norm, total_variation
from .units import channel, deepdream, direction, logit, neuron, random_direction

__all__ = ["IMAGE", "Acts", "Objective", "Probe", "activation_match", "alignment", "blend", "channel", "deepdream",
           "direction", "distance_to", "diversity", "feature_distance", "frame_weights", "gram_cosine", "logit",
           "lp_norm", "neuron", "random_direction", "total_variation"]
