"""featviz_cli/sweep/batch.py: one batch renders exactly what ``featviz render`` of its units gives."""
from __future__ import annotations

from pathlib import Path

import featviz_cli
from featviz_cli import sweep as sw
from featviz_cli.config import parse_spec
from featviz_cli.outputs import png_bytes, to_uint8

from sweeps import spec_dict


def test_a_sweep_batch_renders_exactly_what_render_gives(tmp_path: Path) -> None:
    """A unit's image depends only on the spec: the same as 'featviz render' of its batch."""
    out = tmp_path / "out"
    data = spec_dict(objective={"type": "channel", "layer": "act3", "units": "4:8"}, thresholds=[], sweep={"batch": 4})
    sw.run_sweep(parse_spec(data), out, build_gallery=False)
    plain = spec_dict(objective={"type": "channel", "layer": "act3", "units": [4, 5, 6, 7]}, thresholds=[])
    plain.pop("sweep")
    result = featviz_cli.render(plain)
    images = to_uint8(result.images.permute(0, 2, 3, 1))
    for i, unit in enumerate(range(4, 8)):
        assert (out / f"units/act3/{unit:05d}.png").read_bytes() == png_bytes(images[i])
