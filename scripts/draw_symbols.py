"""Draw the bundled example symbol sets of the Diffusion tab's "Teach it a new symbol" section:
a few shapes the digits model has never seen, 6 images each, white ink on black at the model's
16x16 pixels (as the training digits are), each a little different (size, position, angle, pen).

    python scripts/draw_symbols.py            # writes assets/diffusion/symbols/<name>/<i>.png

Drawn with PIL at 64x64 and boxed down to 16x16, so strokes have soft edges like the digits.
Deterministic (fixed seed): the same files every run. The drawings are ours (CC0).
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

BIG, SIZE, PER_SET = 64, 16, 6


def _points(kind: str) -> list[list[tuple[float, float]]]:
    """Polylines in a unit box centred on 0 (x right, y down)."""
    if kind == "star":  # five-pointed star, drawn as one closed line through every second tip
        tips = [(math.sin(2 * math.pi * k / 5) * 0.9, -math.cos(2 * math.pi * k / 5) * 0.9) for k in range(5)]
        order = [tips[(2 * k) % 5] for k in range(6)]
        return [order]
    if kind == "cross":  # a plus sign
        return [[(0, -0.85), (0, 0.85)], [(-0.85, 0), (0.85, 0)]]
    if kind == "letter-a":
        return [[(-0.7, 0.85), (0, -0.85), (0.7, 0.85)], [(-0.38, 0.15), (0.38, 0.15)]]
    if kind == "triangle":
        return [[(0, -0.8), (0.8, 0.7), (-0.8, 0.7), (0, -0.8)]]
    raise ValueError(kind)


SYMBOLS = ("star", "cross", "letter-a", "triangle")


def draw(kind: str, rng: np.random.Generator) -> Image.Image:
    img = Image.new("L", (BIG, BIG), 0)
    pen = ImageDraw.Draw(img)
    scale = BIG * rng.uniform(0.30, 0.38)
    angle = rng.uniform(-0.2, 0.2)
    cx, cy = BIG / 2 + rng.uniform(-3, 3), BIG / 2 + rng.uniform(-3, 3)
    width = int(rng.integers(5, 8))
    c, s = math.cos(angle), math.sin(angle)
    for line in _points(kind):
        pts = [(cx + scale * (x * c - y * s), cy + scale * (x * s + y * c)) for x, y in line]
        pen.line(pts, fill=255, width=width, joint="curve")
    return img.resize((SIZE, SIZE), Image.BOX)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "assets/diffusion/symbols"))
    args = p.parse_args(argv)
    rng = np.random.default_rng(21)
    for kind in SYMBOLS:
        folder = Path(args.out) / kind
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(PER_SET):
            draw(kind, rng).save(folder / f"{i}.png")
    print(f"wrote {len(SYMBOLS)} sets x {PER_SET} images to {args.out}")


if __name__ == "__main__":
    main()
