"""The README's Python code blocks, each pasted into ``example.py`` and run as ``python
example.py`` in a fresh interpreter (not in pytest's process: a spawned worker would re-run
such a script, which has no ``__main__`` guard), beside real photos under the file names
the block uses."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA
from PIL import Image
from skimage import data as skdata

import ilias_rerank as ir

pytest.importorskip("cv2")

REPO = Path(__file__).resolve().parents[1]
PYTHON_PATH = str(Path(ir.__file__).parents[1])


def _blocks() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def _photos() -> list[Image.Image]:
    """Real photos: SMVS covers when ``../shared/data`` is there, else scikit-image's."""
    refs = sorted((SHARED_DATA / "smvs_dvd_covers" / "Reference").glob("*.jpg"))[:4]
    if len(refs) == 4:
        return [Image.open(p).convert("RGB") for p in refs]
    return [Image.fromarray(f()) for f in (skdata.astronaut, skdata.coffee, skdata.chelsea)]


def _write_images(folder: Path, names: list[str]) -> None:
    """The query (first name) is a rotated, scaled crop of the first database image; the
    others are other photos."""
    photos = _photos()
    db = names[1:]
    for k, name in enumerate(db):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        photos[k % len(photos)].save(path, quality=92)
    target = photos[0]
    w, h = target.size
    crop = target.crop((w // 8, h // 8, w - w // 8, h - h // 8)).rotate(12, expand=True)
    crop.resize((crop.width * 3 // 4, crop.height * 3 // 4)).save(folder / names[0], quality=90)


def test_the_readme_has_the_ten_line_example():
    assert any("ir.rerank(" in b and "extract_local" in b for b in _blocks())


@pytest.mark.parametrize("block", _blocks(), ids=lambda b: b.split("\n")[0][:40])
def test_each_readme_python_block_runs_as_a_script(block, tmp_path):
    tree = ast.parse(block)
    names = [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant)
        and isinstance(n.value, str)
        and n.value.lower().endswith((".jpg", ".png"))
    ]
    if names:
        _write_images(tmp_path, names)
    (tmp_path / "example.py").write_text(block)
    env = dict(os.environ, PYTHONPATH=PYTHON_PATH)
    out = subprocess.run(
        [sys.executable, "example.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    if "ir.rerank(" in block and "shortlist = [2, 0, 1]" in block:
        # The query is a crop of db[0], second in the global order: re-ranked first.
        printed = out.stdout.strip().split("\n")[-1]
        order = ast.literal_eval(printed[: printed.index("]") + 1])
        assert sorted(order) == [0, 1, 2] and order[0] == 0, printed
        scores = np.array(
            [float(x) for x in printed[printed.index("]") + 1 :].strip(" []").split()]
        )
        assert (np.diff(scores) < 0).all(), printed
