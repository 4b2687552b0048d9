"""Regenerate ``opencv_scene.txt``: OpenCV's SIFT (the package's settings: 1,024 features,
contrast 0.02, one thread) on the procedural scene that ``tests/sift.rs`` draws too, its 150
strongest keypoints as the package orders them (``strongest_first``) with their RootSIFT
bytes. Run from the repository root:

    PYTHONPATH=python .venv/bin/python rust/core/tests/sift_data/make_opencv_fixture.py
"""

from pathlib import Path

import cv2
import numpy as np

from ilias_rerank.extractors.sift_opencv import strongest_first

WIDTH, HEIGHT, SHAPES, KEEP = 320, 240, 90, 150


def scene() -> np.ndarray:
    """Integer-only drawing (the Rust test's `scene()` draws the same bytes): rectangles and
    disks of LCG-drawn positions, sizes and grey levels, then a 3x3 box filter."""
    state = 12345

    def draw(n: int) -> int:
        nonlocal state
        state = (state * 1103515245 + 12345) % 2**31
        return (state >> 8) % n

    img = np.full((HEIGHT, WIDTH), 110, np.int64)
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    for _ in range(SHAPES):
        kind, cx, cy = draw(2), draw(WIDTH), draw(HEIGHT)
        size, grey = 3 + draw(28), draw(256)
        if kind == 0:
            mask = (abs(xs - cx) <= size) & (abs(ys - cy) <= size * 2 // 3)
        else:
            mask = (xs - cx) ** 2 + (ys - cy) ** 2 <= size * size
        img[mask] = grey
    pad = np.pad(img, 1, mode="edge")
    box = sum(pad[dy : dy + HEIGHT, dx : dx + WIDTH] for dy in range(3) for dx in range(3))
    return (box // 9).astype(np.uint8)


def main() -> None:
    img = scene()
    cv2.setNumThreads(1)
    kp, desc = cv2.SIFT_create(1024, contrastThreshold=0.02).detectAndCompute(img, None)
    info = np.array([(k.response, k.pt[0], k.pt[1], k.size, k.angle) for k in kp], np.float64)
    _, root, _ = strongest_first(info, desc, KEEP)
    order = np.lexsort((info[:, 1], info[:, 2], -info[:, 0]))[:KEEP]
    root = np.clip(np.rint(root * 512), 0, 255).astype(np.uint8)
    lines = [f"# OpenCV {cv2.__version__}: x y size angle response rootsift-hex"]
    lines.append(f"# image sum {int(img.sum())}, keypoints {len(kp)}")
    for row, d in zip(info[order], root):
        x, y, size, angle, response = row[1], row[2], row[3], row[4], row[0]
        lines.append(f"{x:.4f} {y:.4f} {size:.4f} {angle:.4f} {response:.6f} {d.tobytes().hex()}")
    Path(__file__).with_name("opencv_scene.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
