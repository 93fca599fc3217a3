"""params/spectrum.py: the 1/f magnitude, resampling, a folder's mean spectrum, spectrum files."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from featviz_cli.errors import SpecError
from featviz_cli.params.spectrum import (compute_spectrum, load_magnitude, natural_magnitude, one_over_f,
                                         real_fft_columns, resample_magnitude, save_spectrum)

from conftest import DATA


def test_spectrum_resampling_matches_frequencies() -> None:
    assert torch.allclose(resample_magnitude(one_over_f(32), 16), one_over_f(16))
    assert torch.equal(resample_magnitude(one_over_f(16), 16), one_over_f(16))


def test_one_over_f_is_one_over_the_frequency_with_zero_dc() -> None:
    mag = one_over_f(8)
    assert mag.shape == (3, 8, 5) and float(mag[0, 0, 0]) == 0
    assert float(mag[1, 0, 1]) == pytest.approx(8.0) and float(mag[2, 4, 4]) == pytest.approx(1 / 0.5**0.5)
    assert real_fft_columns(8) == [0, 4] and real_fft_columns(9) == [0]
    assert load_magnitude(None, 8).equal(natural_magnitude(8))  # no file: the built-in natural spectrum


def test_spectrum_of_a_folder_and_loading_it(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("coffee.jpg", "chelsea.jpg"):
        (tmp_path / "sub" / name).write_bytes((DATA / name).read_bytes())
    (tmp_path / "broken.png").write_bytes(b"not an image")
    result = compute_spectrum(tmp_path, 32)
    assert (result["images"], result["skipped"], result["size"]) == (2, 1, 32)
    assert result["magnitude"].shape == (3, 32, 17)
    save_spectrum(result, tmp_path / "s.pt")
    mag = load_magnitude(str(tmp_path / "s.pt"), 24)
    assert mag.shape == (3, 24, 13) and (mag >= 0).all() and mag[:, 0, 0].eq(0).all()
    # natural images: more energy at low than at high frequencies
    assert mag[0, 1, 1] > 3 * mag[0, 12, 12]


def test_bad_spectrum_file_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    torch.save({"magnitude": torch.zeros(3, 4)}, bad)
    with pytest.raises(SpecError, match=r"param.spectrum: .*not a spectrum file"):
        load_magnitude(str(bad), 16)
    with pytest.raises(SpecError, match=r"param.spectrum: .*no such file"):
        load_magnitude(str(tmp_path / "missing.pt"), 16)


def test_a_folder_without_readable_images_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"not an image")
    with pytest.raises(SpecError, match="none of the 1 image file"):
        compute_spectrum(tmp_path, 16)
