"""featviz_cli/directions/sample.py: the bounded, seeded, resumable sample of a layer's activation vectors."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from featviz_cli.directions.sample import sample_activations
from featviz_cli.errors import SpecError

from conftest import DATA
from directions_helpers import acts_of, images_of, square_photos


def test_the_sample_is_bounded_and_independent_of_batches(tiny_model) -> None:
    model, info = tiny_model
    a = sample_activations(model, info, "act3", DATA, size=50, crops=2, batch_size=3)
    b = sample_activations(model, info, "act3", DATA, size=50, crops=2, batch_size=1)
    assert a.vectors.shape == (50, 32) and a.positions == 4 * 3 * 64 and a.done == 4
    assert torch.equal(a.vectors, b.vectors) and torch.equal(a.where, b.where)
    assert set(a.paths) == set(a.where[:, 0].tolist())  # only the images still in the sample are named


def test_sampled_vectors_are_the_activations_at_their_positions(tiny_model, tmp_path: Path) -> None:
    photos = square_photos(tmp_path / "p")
    model, info = tiny_model
    s = sample_activations(model, info, "act3", photos, size=40)
    names = sorted(p.name for p in photos.iterdir())
    acts = acts_of(tiny_model, images_of([photos / n for n in names]))
    for v, (i, crop, y, x) in zip(s.vectors, s.where.tolist()):
        assert crop == 0 and torch.allclose(v, acts[i, :, y, x], atol=1e-5)


def test_a_resumed_sample_equals_an_uninterrupted_one(tiny_model, tmp_path: Path) -> None:
    model, info = tiny_model
    ckpt = tmp_path / "s.pt"
    whole = sample_activations(model, info, "act3", DATA, size=30, crops=1)
    calls = []

    def stop_after_two(done: int, total: int, speed: float) -> None:
        calls.append(done)
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sample_activations(model, info, "act3", DATA, size=30, crops=1, batch_size=1, checkpoint=ckpt,
                           checkpoint_every=1, progress=stop_after_two)
    notes: list[str] = []
    resumed = sample_activations(model, info, "act3", DATA, size=30, crops=1, checkpoint=ckpt, notify=notes.append)
    assert notes and "2 of 4 images already sampled" in notes[0]
    assert torch.equal(resumed.vectors, whole.vectors) and torch.equal(resumed.where, whole.where)
    with pytest.raises(SpecError, match="belongs to another pass"):
        sample_activations(model, info, "act3", DATA, size=31, crops=1, checkpoint=ckpt)


def test_a_class_sample_keeps_only_positions_attributed_to_it(tiny_model) -> None:
    model, info = tiny_model
    s = sample_activations(model, info, "act3", DATA, size=10_000, klass=3)
    assert 0 < s.vectors.shape[0] == s.positions < 4 * 64  # positions with no positive attribution never drawn


def test_an_empty_folder_and_a_layer_without_a_map_are_errors(tiny_model, tmp_path: Path) -> None:
    model, info = tiny_model
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpecError, match=r"^--images: .*empty: no .* files in it or below"):
        sample_activations(model, info, "act3", tmp_path / "empty")
    with pytest.raises(SpecError, match=r"^layer: layer 'fc' has no spatial map"):
        sample_activations(model, info, "fc", DATA)


def test_a_folder_must_hold_a_readable_image(tmp_path: Path) -> None:
    from featviz_cli.directions.sample import check_folder

    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "a.jpg").write_text("not a jpeg")
    with pytest.raises(SpecError, match=r"^--images: .*b: none of its 1 image files can be read \(first: a\.jpg: "
                                        r"UnidentifiedImageError"):
        check_folder(tmp_path / "b")
    (tmp_path / "b" / "c.jpg").write_bytes((DATA / "coffee.jpg").read_bytes())
    assert check_folder(tmp_path / "b") == 2


def test_the_probe_rejects_layers_without_a_map_and_shows_negative_values(tiny_model) -> None:
    from featviz_cli.directions.sample import probe_layer

    model, info = tiny_model
    probe = probe_layer(model, info, "act3")
    assert probe.shape == (2, 32, 8, 8) and probe.min() >= 0
    assert not torch.equal(probe[0], probe[1])  # grey and noise
    assert probe_layer(model, info, "conv3").min() < 0
    with pytest.raises(SpecError, match=r"^objective\.layer: layer 'pool' has no spatial map \(its activations are "
                                        r"\(32, 1, 1\)\); choose a convolutional layer before the pooling"):
        probe_layer(model, info, "pool")
    with pytest.raises(SpecError, match=r"^--layer: layer 'fc' has no spatial map \(its activations are \(10,\)\)"):
        probe_layer(model, info, "fc", field="--layer")


def test_unreadable_images_are_skipped_and_named(tiny_model, tmp_path: Path) -> None:
    model, info = tiny_model
    photos = square_photos(tmp_path / "p")
    (photos / "zz.jpg").write_text("not a jpeg")
    notes: list[str] = []
    s = sample_activations(model, info, "act3", photos, size=1000, notify=notes.append)
    assert s.done == 5 and s.vectors.shape == (4 * 64, 32)
    assert notes == ["1 unreadable image(s) skipped: zz.jpg (UnidentifiedImageError: cannot identify image file "
                     f"{str(photos / 'zz.jpg')!r})"]
