"""featviz_cli/directions/matrix.py: dictionary files (.npy, .pt, .safetensors), their checks and errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from featviz_cli.directions.matrix import (check_width, dictionary_rows, load_dictionary, read_array,
                                           save_dictionary)
from featviz_cli.errors import SpecError

M = np.arange(12, dtype=np.float32).reshape(3, 4) + 1


@pytest.mark.parametrize("suffix", [".npy", ".pt", ".safetensors"])
def test_a_saved_dictionary_reads_back(tmp_path: Path, suffix: str) -> None:
    path = save_dictionary(tmp_path / f"d{suffix}", M)
    assert torch.equal(load_dictionary(path), torch.from_numpy(M))
    assert torch.equal(dictionary_rows(path, [2, 0]), torch.from_numpy(M[[2, 0]]))


def test_a_file_of_several_tensors_needs_vector_key(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file({"W_dec": torch.from_numpy(M), "W_enc": torch.from_numpy(M.T.copy()), "b": torch.ones(4)},
              str(tmp_path / "sae.safetensors"))
    assert torch.equal(read_array(tmp_path / "sae.safetensors", key="W_dec"), torch.from_numpy(M))
    with pytest.raises(SpecError, match=r"^objective\.vector_key: .* holds several tensors \('W_dec', 'W_enc', 'b'\)"):
        read_array(tmp_path / "sae.safetensors")
    with pytest.raises(SpecError, match=r"^objective\.vector_key: .* has no tensor 'W'; it has: 'W_dec', 'W_enc', 'b'"):
        read_array(tmp_path / "sae.safetensors", key="W")
    torch.save({"only": torch.from_numpy(M)}, tmp_path / "one.pt")
    assert torch.equal(read_array(tmp_path / "one.pt"), torch.from_numpy(M))  # the only 2-D tensor


def test_bad_rows_and_shapes_are_one_line_errors_with_the_fix(tmp_path: Path) -> None:
    bad = M.copy()
    bad[1, 2] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(SpecError, match=r"^objective\.vector_file: .*nan\.npy: row\(s\) 1 hold NaN or infinite"):
        load_dictionary(tmp_path / "nan.npy")
    zero = M.copy()
    zero[[0, 2]] = 0
    np.save(tmp_path / "zero.npy", zero)
    with pytest.raises(SpecError, match=r"row\(s\) 0, 2 are all zeros"):
        load_dictionary(tmp_path / "zero.npy")
    np.save(tmp_path / "vec.npy", M[0])
    with pytest.raises(SpecError, match=r"shape \(4,\); a dictionary is an N x C matrix"):
        load_dictionary(tmp_path / "vec.npy")
    (tmp_path / "d.txt").write_text("1 2 3")
    with pytest.raises(SpecError, match=r"unknown kind of file; save the matrix as \.npy, \.pt, \.pth, \.safetensors"):
        load_dictionary(tmp_path / "d.txt")
    (tmp_path / "broken.npy").write_bytes(b"not numpy")
    with pytest.raises(SpecError, match=r"cannot read a matrix \(ValueError"):
        load_dictionary(tmp_path / "broken.npy")
    with pytest.raises(SpecError, match=r"^objective\.units: row 3 is out of range for .* with 3 rows \(0\.\.2\)"):
        dictionary_rows(save_dictionary(tmp_path / "d.npy", M), [3])


def test_the_width_must_match_the_layer_and_a_transposed_matrix_is_named() -> None:
    check_width(torch.zeros(3, 4), 4, "act", "d.npy")
    with pytest.raises(SpecError, match=r"rows have 4 values but layer 'act' has 8 channels; the matrix must be N x 8"):
        check_width(torch.zeros(3, 4), 8, "act", "d.npy")
    with pytest.raises(SpecError, match=r"It looks transposed \(C x N\): save its transpose\."):
        check_width(torch.zeros(3, 4), 3, "act", "d.npy")
