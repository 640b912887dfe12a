"""Offline keyframe renderer: draws what a Frame says, in a movie's learned style.

This is the offline stand-in for stage 3 (SDXL + style token). It paints a
recognisable background per location kind from the style palette, applies the
style's post effects (grading, texture, lighting, grain) to the background only,
then draws the characters on top in their exact clothing colours with a dark
outline, so that later code can read "who wears what" and "how many" from pixels.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from functools import lru_cache
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from ..core.plot import Character, Frame, MoviePlot
from ..core.vocabulary import CLOTHING_COLOURS
from .look import RGB, StyleParams

# Outline ink: a deep navy, kept >= 45 from every clothing colour (black included)
# so outlines never count as clothing, and darker than any palette colour.
INK: RGB = (14, 20, 72)
# Background pixels are pushed at least this far (RGB distance) from every
# clothing colour; figure parts other than clothing stay >= 45 away by design.
CLOTHING_CLEARANCE = 52.0
# How much of a background element's colour comes from the palette in frames
# (the rest is the element's canonical colour, which keeps kinds recognisable).
FRAME_PALETTE_WEIGHT = 0.6
# Lighting: log-brightness slope across half the image at strength 1.
LIGHT_GAIN = 0.4

# Figure colours that are not clothing (all >= 45 from every clothing colour).
SKIN_TONES: tuple[RGB, ...] = ((240, 205, 178), (200, 150, 115), (150, 100, 72))
HAIR_COLOURS: dict[str, RGB] = {
    "black": (62, 48, 44),
    "dark": (62, 48, 44),
    "brown": (95, 70, 75),
    "blonde": (225, 195, 120),
    "golden": (225, 195, 120),
    "red": (165, 82, 70),
    "auburn": (165, 82, 70),
    "ginger": (165, 82, 70),
    "grey": (178, 172, 168),
    "gray": (178, 172, 168),
    "silver": (178, 172, 168),
    "white": (200, 195, 215),
}
DEFAULT_HAIR: RGB = (95, 70, 75)
STOOL: RGB = (160, 125, 90)
MOUTH: RGB = (135, 40, 70)
TEAR: RGB = (150, 200, 235)

# Held-object colours (main, detail); each >= 45 from every clothing colour.
OBJECT_COLOURS: dict[str, tuple[RGB, RGB]] = {
    "book": ((80, 100, 130), (225, 205, 165)),
    "lantern": ((90, 90, 80), (255, 225, 110)),
    "sword": ((185, 195, 210), (165, 130, 60)),
    "cup": ((185, 225, 225), (90, 90, 80)),
    "letter": ((245, 230, 195), (165, 82, 70)),
    "flower": ((90, 120, 60), (250, 170, 215)),
    "umbrella": ((60, 95, 110), (90, 90, 80)),
    "key": ((205, 170, 80), (90, 90, 80)),
    "map": ((225, 205, 150), (165, 82, 70)),
    "basket": ((175, 135, 80), (90, 90, 80)),
    "phone": ((55, 60, 80), (150, 205, 235)),
    "camera": ((70, 72, 82), (170, 210, 230)),
}

# Canonical background colours; frames mix them with the palette.
SKY: RGB = (150, 190, 225)
SEA: RGB = (55, 115, 170)
SAND: RGB = (220, 198, 150)
GRASS: RGB = (110, 160, 80)
LEAF: RGB = (55, 105, 65)
LEAF_FAR: RGB = (80, 120, 95)
TRUNK: RGB = (95, 65, 45)
SNOW: RGB = (238, 242, 248)
ROCK: RGB = (115, 112, 130)
WALL: RGB = (212, 192, 162)
FLOOR: RGB = (140, 100, 70)
WOOD: RGB = (150, 108, 70)
STONE: RGB = (170, 165, 155)
SUN: RGB = (252, 222, 120)
BRICK: RGB = (165, 92, 72)
PLASTER: RGB = (196, 176, 146)
ROAD: RGB = (85, 85, 92)
GLASS: RGB = (235, 215, 140)
PANE: RGB = (170, 210, 235)
DUNE: RGB = (225, 185, 115)
CACTUS: RGB = (70, 130, 80)
LAB_WALL: RGB = (200, 218, 218)
STEEL: RGB = (125, 135, 148)
LIQUID: RGB = (120, 205, 150)
AWNING: RGB = (205, 85, 85)
TRAIN: RGB = (70, 110, 155)
SHELF: RGB = (105, 72, 50)
BOOKS: tuple[RGB, ...] = ((150, 60, 60), (60, 90, 140), (70, 120, 80), (180, 150, 70), (110, 70, 110))
FLOWERS: tuple[RGB, ...] = ((235, 150, 190), (250, 220, 90), (215, 90, 90), (175, 140, 225))
CARPET: RGB = (125, 62, 62)

# Palette roles (indices into StyleParams.palette).
LIGHT, FAR, MID, GROUND, ACCENT = 0, 1, 2, 3, 4

Painter = Callable[..., None]


def stable_seed(*parts: object) -> int:
    """A seed from any parts that is the same in every process (unlike hash())."""
    h = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8)
    return int.from_bytes(h.digest(), "little")


def line_px(line_weight: int, width: int, height: int) -> int:
    """Outline width in pixels: line_weight is given at 256 px."""
    return max(1, round(line_weight * min(width, height) / 256))


# ---------------------------------------------------------------- post effects


def texture_period(height: int, width: int) -> int:
    return max(4, round(min(height, width) / 40))


@lru_cache(maxsize=32)
def texture_pattern(kind: str, height: int, width: int) -> np.ndarray:
    """Unit-strength multiplicative texture (brightness factor = 1 + strength * p).

    Each kind is periodic at its own frequency (hatch: diagonal, canvas: axes,
    stipple: a dot grid of another period), so fit_style can measure them apart.
    """
    p = texture_period(height, width)
    y, x = np.mgrid[0:height, 0:width]
    if kind == "hatch":
        w = max(1, round(p / 6))
        t = (((x + y) % p) < w).astype(np.float32)
        pat = -0.6 * (t - t.mean())
    elif kind == "canvas":
        pat = 0.15 * (np.sin(2 * np.pi * x / p) + np.sin(2 * np.pi * y / p))
    elif kind == "stipple":
        q = p + 3
        d = max(1, round(q / 6))
        t = (((x % q) < d) & ((y % q) < d)).astype(np.float32)
        pat = -0.7 * (t - t.mean())
    else:
        pat = np.zeros((height, width))
    pat = pat.astype(np.float32)
    pat.setflags(write=False)
    return pat


def light_coords(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Image-plane coordinates for lighting: x right, y up, ~[-1, 1] on the long side."""
    r = max(height, width) / 2
    xs = (np.arange(width, dtype=np.float32) - (width - 1) / 2) / r
    ys = ((height - 1) / 2 - np.arange(height, dtype=np.float32)) / r
    return xs, ys


def lighting_field(strength: float, angle: float, height: int, width: int) -> np.ndarray:
    """Brightness factor exp(LIGHT_GAIN * strength * <(x, y), light direction>): log-linear
    so fit_style can read it back as a plane."""
    xs, ys = light_coords(height, width)
    a = math.radians(angle)
    g = LIGHT_GAIN * strength
    return np.exp(g * math.cos(a) * xs[None, :] + g * math.sin(a) * ys[:, None]).astype(np.float32)


def grade(img: np.ndarray, saturation: float, contrast: float) -> np.ndarray:
    """Saturation about each pixel's grey (mean of RGB), then contrast about mid-grey.

    Both are linear per pixel, so it is one 3x3 matrix plus an offset (one fast
    pass instead of a slow mean over the short channel axis)."""
    m = contrast * (saturation * np.eye(3) + (1.0 - saturation) / 3.0)
    out = img @ m.astype(np.float32)
    out += 128.0 * (1.0 - contrast)
    return out


def style_background(flat: np.ndarray, style: StyleParams) -> np.ndarray:
    """The seed-independent effects on a flat drawing: grade (ink excluded), texture,
    lighting. Returns float32 HxWx3 on the 0..255 scale (unclipped)."""
    h, w, _ = flat.shape
    ink = (flat[..., 0] == INK[0]) & (flat[..., 1] == INK[1]) & (flat[..., 2] == INK[2])
    out = grade(flat.astype(np.float32), style.saturation, style.contrast)
    out[ink] = INK
    factor = lighting_field(style.lighting, style.light_angle, h, w)
    if style.texture_kind != "none" and style.texture > 0:
        factor *= 1.0 + np.float32(style.texture) * texture_pattern(style.texture_kind, h, w)
    out *= factor[:, :, None]
    return out


# Standard normal quantiles at 2**16 evenly spaced probabilities: indexing it with
# random 16-bit integers draws Gaussian grain ~3x faster than standard_normal.
_NORMAL_QUANTILES = np.array(
    [statistics.NormalDist().inv_cdf((i + 0.5) / 65536) for i in range(65536)], np.float32
)


def add_grain(img: np.ndarray, grain: float, seed: int) -> np.ndarray:
    """Per-channel film grain (independent per channel so it is separable from texture)."""
    if grain <= 0:
        return np.clip(img, 0, 255).astype(np.uint8)
    rng = np.random.default_rng(seed)
    noise = (grain * _NORMAL_QUANTILES).take(rng.integers(0, 65536, img.shape, dtype=np.uint16))
    noise += img
    return np.clip(noise, 0, 255, out=noise).astype(np.uint8)


def _clearance_lut() -> np.ndarray:
    """Per 8-level RGB bin, the shift that moves the bin centre out of every clothing
    colour's clearance ball (zero for bins already clear)."""
    c = (np.arange(32, dtype=np.float32) * 8 + 3.5)
    grid = np.stack(np.meshgrid(c, c, c, indexing="ij"), axis=-1).reshape(-1, 3)
    moved = grid.copy()
    grey = np.full(3, 128.0, np.float32)
    for _ in range(4):  # pushing from one colour may land near another; repeat
        for col in CLOTHING_COLOURS.values():
            c = np.array(col, np.float32)
            v = moved - c
            d = np.linalg.norm(v, axis=1)
            near = d < CLOTHING_CLEARANCE
            v[near & (d < 1e-3)] = grey - c if np.any(c != grey) else 1.0
            d = np.linalg.norm(v, axis=1)
            pushed = np.clip(c + v[near] * (CLOTHING_CLEARANCE / d[near])[:, None], 0, 255)
            # clipping (e.g. near white) can undo the push: go toward mid-grey instead
            stuck = np.linalg.norm(pushed - c, axis=1) < CLOTHING_CLEARANCE - 1
            toward = grey - c if np.any(c != grey) else np.ones(3, np.float32)
            pushed[stuck] = c + toward / np.linalg.norm(toward) * (CLOTHING_CLEARANCE + 1)
            moved[near] = pushed

    # the few bins caught between two colours: move to the nearest clear bin centre
    def gap(p: np.ndarray) -> np.ndarray:
        return np.min([np.linalg.norm(p - np.array(c, np.float32), axis=1) for c in CLOTHING_COLOURS.values()], axis=0)

    clear = grid[gap(grid) >= CLOTHING_CLEARANCE + 7]
    stuck = np.flatnonzero(gap(moved) < CLOTHING_CLEARANCE - 1)
    for i in stuck:
        moved[i] = clear[np.argmin(np.linalg.norm(clear - moved[i], axis=1))]
    return np.round(moved - grid).astype(np.int16).reshape(32, 32, 32, 3)


_CLEARANCE_SHIFT = _clearance_lut()


def keep_clear_of_clothing(img: np.ndarray) -> np.ndarray:
    """Shift background colours away from the clothing colours, so that clothing
    pixels can only come from figures. (One flat bin index and take(): ~3x faster
    than indexing the LUT with three arrays.)"""
    q = (img >> 3).astype(np.uint16)
    shift = _CLEARANCE_SHIFT.reshape(-1, 3).take((q[..., 0] << 10) | (q[..., 1] << 5) | q[..., 2], axis=0)
    shift += img
    return np.clip(shift, 0, 255, out=shift).astype(np.uint8)


# ----------------------------------------------------------------- backgrounds


def _mix(a: RGB, b: RGB, w: float) -> RGB:
    out = tuple(int(round(x * (1 - w) + y * w)) for x, y in zip(a, b))
    return out if out != INK else (out[0] + 1, out[1], out[2])  # ink is reserved


def _poly(d: ImageDraw.ImageDraw, pts, fill: RGB, lw: int) -> None:
    d.polygon([(float(x), float(y)) for x, y in pts], fill=fill, outline=INK, width=lw)


def _bg_forest(d, W, H, rng, pc, lw):
    d.rectangle([0, 0, W, H], fill=pc(LIGHT, SKY))
    pts = [(0, H * 0.62)]
    for i in range(13):
        pts.append((W * i / 12, H * (0.36 + 0.08 * rng.random())))
    pts.append((W, H * 0.62))
    _poly(d, pts, pc(FAR, LEAF_FAR), lw)
    d.rectangle([-lw, H * 0.6, W + lw, H + lw], fill=pc(GROUND, GRASS), outline=INK, width=lw)
    n = int(rng.integers(5, 8))
    for i in range(n):
        x = W * (i + 0.2 + 0.6 * rng.random()) / n
        base = H * (0.64 + 0.1 * rng.random())
        tw = W * 0.035
        top = H * (0.15 + 0.12 * rng.random())
        d.rectangle([x - tw / 2, top + H * 0.12, x + tw / 2, base], fill=pc(GROUND, TRUNK), outline=INK, width=lw)
        cw = W * (0.09 + 0.05 * rng.random())
        if rng.random() < 0.5:
            _poly(d, [(x, top - H * 0.08), (x - cw, top + H * 0.3), (x + cw, top + H * 0.3)], pc(MID, LEAF), lw)
        else:
            d.ellipse([x - cw, top - H * 0.06, x + cw, top + H * 0.26], fill=pc(MID, LEAF), outline=INK, width=lw)
    for _ in range(int(rng.integers(3, 6))):
        x, y, r = W * rng.random(), H * (0.7 + 0.25 * rng.random()), min(W, H) * 0.025
        d.pieslice([x - r, y - r, x + r, y + r], 180, 360, fill=pc(ACCENT, (200, 95, 75)), outline=INK, width=lw)


def _bg_beach(d, W, H, rng, pc, lw):
    d.rectangle([0, 0, W, H], fill=pc(LIGHT, SKY))
    r = min(W, H) * 0.09
    sx, sy = W * (0.65 + 0.25 * rng.random()), H * (0.12 + 0.08 * rng.random())
    d.ellipse([sx - r, sy - r, sx + r, sy + r], fill=pc(ACCENT, SUN), outline=INK, width=lw)
    d.rectangle([-lw, H * 0.45, W + lw, H * 0.64], fill=pc(FAR, SEA), outline=INK, width=lw)
    for i in range(6):
        y = H * (0.49 + 0.025 * i)
        x0 = W * rng.random() * 0.8
        d.line([(x0, y), (x0 + W * 0.15, y)], fill=pc(LIGHT, SNOW), width=max(1, lw // 2))
    pts = [(-lw, H * 0.64)] + [(W * i / 8, H * (0.62 + 0.03 * rng.random())) for i in range(9)] + [(W + lw, H + lw), (-lw, H + lw)]
    _poly(d, pts, pc(GROUND, SAND), lw)
    # a parasol stuck in the sand
    px = W * (0.08 + 0.12 * rng.random())
    d.line([(px, H * 0.5), (px, H * 0.78)], fill=INK, width=max(1, lw))
    d.pieslice([px - W * 0.1, H * 0.42, px + W * 0.1, H * 0.6], 180, 360, fill=pc(ACCENT, AWNING), outline=INK, width=lw)


def _bg_street(d, W, H, rng, pc, lw):
    d.rectangle([0, 0, W, H], fill=pc(LIGHT, SKY))
    x = -W * 0.05 * rng.random()
    while x < W:
        bw = W * (0.16 + 0.12 * rng.random())
        top = H * (0.05 + 0.25 * rng.random())
        canon = BRICK if rng.random() < 0.5 else PLASTER
        d.rectangle([x, top, x + bw, H * 0.66], fill=pc(MID, canon), outline=INK, width=lw)
        cols = max(1, int(bw / (W * 0.06)))
        ww = bw / (cols * 2 + 1)
        y = top + ww
        while y + ww * 1.4 < H * 0.58:
            for c in range(cols):
                wx = x + ww * (1 + 2 * c)
                d.rectangle([wx, y, wx + ww, y + ww * 1.4], fill=pc(ACCENT, GLASS), outline=INK, width=max(1, lw // 2))
            y += ww * 2.4
        x += bw
    d.rectangle([-lw, H * 0.66, W + lw, H * 0.74], fill=pc(FAR, STONE), outline=INK, width=lw)
    d.rectangle([-lw, H * 0.74, W + lw, H + lw], fill=pc(GROUND, ROAD), outline=INK, width=lw)
    for i in range(5):
        x0 = W * (i / 5 + 0.05)
        d.rectangle([x0, H * 0.86, x0 + W * 0.1, H * 0.875], fill=pc(LIGHT, SNOW))


def _bg_room(d, W, H, rng, pc, lw):
    d.rectangle([0, 0, W, H], fill=pc(LIGHT, WALL))
    d.rectangle([-lw, H * 0.68, W + lw, H + lw], fill=pc(GROUND, FLOOR), outline=INK, width=lw)
    for i in range(1, 4):
        y = H * (0.68 + 0.08 * i)
        d.line([(0, y), (W, y)], fill=INK, width=max(1, lw // 2))
    wx = W * (0.08 + 0.3 * rng.random())
    d.rectangle([wx, H * 0.12, wx + W * 0.24, H * 0.44], fill=pc(ACCENT, PANE), outline=INK, width=lw)
    d.line([(wx + W * 0.12, H * 0.12), (wx + W * 0.12, H * 0.44)], fill=INK, width=lw)
    d.line([(wx, H * 0.28), (wx + W * 0.24, H * 0.28)], fill=INK, width=lw)
    tx = W * (0.55 + 0.2 * rng.random()) if wx < W * 0.3 else W * (0.05 + 0.1 * rng.random())
    d.rectangle([tx, H * 0.56, tx + W * 0.3, H * 0.6], fill=pc(MID, WOOD), outline=INK, width=lw)
    for lx in (tx + W * 0.02, tx + W * 0.26):
        d.rectangle([lx, H * 0.6, lx + W * 0.02, H * 0.76], fill=pc(MID, WOOD), outline=INK, width=lw)
    d.rectangle([W * 0.4, H * 0.14, W * 0.5, H * 0.3], fill=pc(FAR, SHELF), outline=INK, width=lw)


def _bg_shop(d, W, H, rng, pc, lw):
    d.rectangle([0, 0, W, H], fill=pc(LIGHT, WALL))
    for s in range(3):
        y = H * (0.16 + 0.14 * s)
        d.rectangle([W * 0.04, y, W * 0.96, y + H * 0.025], fill=pc(MID, WOOD), outline=INK, width=lw)
        x = W * 0.06
        while x < W * 0.92:
            gw = W * (0.03 + 0.03 * rng.random())
            gh = H * (0.04 + 0.05 * rng.random())
            col = FLOWERS[int(rng.integers(len(FLOWERS)))]
            if rng.random() < 0.5:
                d.rectangle([x, y - gh, x + gw, y], fill=pc(ACCENT, col), outline=INK, width=max(1, lw // 2))
            else:
                d.ellipse([x, y - gw, x + gw, y], fill=pc(ACCENT, col), outline=INK, width=max(1, lw // 2))
            x += gw + W * 0.02
    d.rectangle([-lw, H * 0.58, W + lw, H * 0.72], fill=pc(FAR, WOOD), outline=INK, width=lw)
    d.rectangle([-lw, H * 0.58, W + lw, H * 0.61], fill=pc(MID, SHELF), outline=INK, width=lw)
    rx = W * (0.1 + 0.7 * rng.random())
    d.rectangle([rx, H * 0.5, rx + W * 0.1, H * 0.58], fill=pc(MID, STEEL), outline=INK, width=lw)
    d.rectangle([-lw, H * 0.72, W + lw, H + lw], fill=pc(GROUND, FLOOR), outline=INK, width=lw)


def _bg_hall(d, W, H, rng, pc, lw):
    d.rectangle([0, 0, W, H], fill=pc(LIGHT, STONE))
    n = int(rng.integers(3, 5))
    step = W / n
    for i in range(n):
        ax0, ax1 = step * i + step * 0.2, step * (i + 1) - step * 0.2
        aw = ax1 - ax0
        d.rectangle([ax0, H * 0.25 + aw / 2, ax1, H * 0.7], fill=pc(FAR, (90, 85, 100)), outline=INK, width=lw)
        d.pieslice([ax0, H * 0.25, ax1, H * 0.25 + aw], 180, 360, fill=pc(FAR, (90, 85, 100)), outline=INK, width=lw)
        d.rectangle([ax0 + lw, H * 0.25 + aw / 2 - lw, ax1 - lw, H * 0.25 + aw / 2 + lw], fill=pc(FAR, (90, 85, 100)))
        bx = ax0 + aw * 0.3
        d.rectangle([bx, H * 0.3 + aw / 2, bx + aw * 0.4, H * 0.5 + aw / 2], fill=pc(ACCENT, (170, 60, 85)), outline=INK, width=max(1, lw // 2))
    for i in range(n + 1):
        cx = step * i
        cw = W * 0.035
        d.rectangle([cx - cw, H * 0.1, cx + cw, H * 0.72], fill=pc(MID, (220, 214, 200)), outline=INK, width=lw)
        d.rectangle([cx - cw * 1.5, H * 0.08, cx + cw * 1.5, H * 0.12], fill=pc(MID, (220, 214, 200)), outline=INK, width=lw)
    d.rectangle([-lw, H * 0.72, W + lw, H + lw], fill=pc(GROUND, (120, 110, 105)), outline=INK, width=lw)
    for i in range(8):
        x = W * i / 7
        d.line([(W / 2 + (x - W / 2) * 0.6, H * 0.72), (x + (x - W / 2) * 0.5, H)], fill=INK, width=max(1, lw // 2))


def _bg_lighthouse(d, W, H, rng, pc, lw):
    d.rectangle([0, 0, W, H], fill=pc(LIGHT, SKY))
    d.rectangle([-lw, H * 0.5, W + lw, H + lw], fill=pc(FAR, SEA), outline=INK, width=lw)
    pts = [(-lw, H * 0.74)] + [(W * i / 6, H * (0.7 + 0.04 * rng.random())) for i in range(7)] + [(W + lw, H + lw), (-lw, H + lw)]
    _poly(d, pts, pc(GROUND, ROCK), lw)
    tx = W * (0.62 + 0.25 * rng.random())
    top, base = H * 0.18, H * 0.72
    bw, tw = W * 0.08, W * 0.05
    _poly(d, [(tx - bw, base), (tx + bw, base), (tx + tw, top), (tx - tw, top)], pc(MID, (232, 232, 226)), lw)
    for k in range(3):
        f0, f1 = 0.2 + 0.25 * k, 0.32 + 0.25 * k
        y0, y1 = top + (base - top) * f0, top + (base - top) * f1
        w0, w1 = tw + (bw - tw) * f0, tw + (bw - tw) * f1
        _poly(d, [(tx - w0, y0), (tx + w0, y0), (tx + w1, y1), (tx - w1, y1)], pc(ACCENT, (185, 65, 65)), lw)
    ly = top - H * 0.07
    _poly(d, [(tx, ly), (tx - W * 0.35, ly - H * 0.06), (tx - W * 0.35, ly + H * 0.06)], pc(LIGHT, SUN), 0)
    d.rectangle([tx - tw, ly, tx + tw, top], fill=pc(ACCENT, SUN), outline=INK, width=lw)
    _poly(d, [(tx - tw * 1.3, ly), (tx + tw * 1.3, ly), (tx, ly - H * 0.05)], pc(MID, ROCK), lw)


def _bg_harbor(d, W, H, rng, pc, lw):
    d.rectangle([0, 0, W, H], fill=pc(LIGHT, SKY))
    d.rectangle([-lw, H * 0.45, W + lw, H * 0.78], fill=pc(FAR, SEA), outline=INK, width=lw)
    bx = W * (0.15 + 0.5 * rng.random())
    bw = W * 0.3
    _poly(d, [(bx, H * 0.56), (bx + bw, H * 0.56), (bx + bw * 0.85, H * 0.66), (bx + bw * 0.12, H * 0.66)], pc(MID, (140, 65, 55)), lw)
    mx = bx + bw * 0.45
    d.line([(mx, H * 0.2), (mx, H * 0.56)], fill=INK, width=max(1, lw))
    _poly(d, [(mx + lw, H * 0.22), (mx + lw, H * 0.53), (mx + bw * 0.4, H * 0.53)], pc(ACCENT, (240, 232, 210)), lw)
    d.rectangle([-lw, H * 0.78, W + lw, H + lw], fill=pc(GROUND, (112, 82, 58)), outline=INK, width=lw)
    for i in range(9):
        x = W * i / 8
        d.line([(x, H * 0.78), (x, H)], fill=INK, width=max(1, lw // 2))
    for i in range(4):
        x = W * (0.1 + 0.27 * i)
        d.rectangle([x, H * 0.7, x + W * 0.03, H * 0.8], fill=pc(GROUND, (112, 82, 58)), outline=INK, width=lw)


def _bg_mountain(d, W, H, rng, pc, lw):
    d.rectangle([0, 0, W, H], fill=pc(LIGHT, SKY))
    r = min(W, H) * 0.07
    sx, sy = W * (0.1 + 0.2 * rng.random()), H * 0.12
    d.ellipse([sx - r, sy - r, sx + r, sy + r], fill=pc(ACCENT, SUN), outline=INK, width=lw)
    n = int(rng.integers(3, 5))
    for i in range(n):
        px = W * (i + 0.3 + 0.4 * rng.random()) / n
        ph = H * (0.1 + 0.15 * rng.random())
        half = W * (0.22 + 0.1 * rng.random())
        base = H * 0.64
        _poly(d, [(px - half, base), (px, ph), (px + half, base)], pc(FAR, ROCK), lw)
        f = 0.3
        cy = ph + (base - ph) * f
        cap = [(px - half * f, cy), (px, ph), (px + half * f, cy), (px + half * f * 0.4, cy - H * 0.02), (px, cy + H * 0.015), (px - half * f * 0.4, cy - H * 0.02)]
        _poly(d, cap, pc(LIGHT, SNOW), lw)
    pts = [(-lw, H * 0.66)] + [(W * i / 4, H * (0.6 + 0.06 * rng.random())) for i in range(5)] + [(W + lw, H + lw), (-lw, H + lw)]
    _poly(d, pts, pc(MID, (100, 130, 85)), lw)
    _poly(d, [(W * 0.35, H + lw), (W * 0.48, H * 0.68), (W * 0.52, H * 0.68), (W * 0.65, H + lw)], pc(GROUND, (150, 130, 100)), lw)


def _bg_desert(d, W, H, rng, pc, lw):
    d.rectangle([0, 0, W, H], fill=pc(LIGHT, (235, 212, 165)))
    r = min(W, H) * 0.11
    sx, sy = W * (0.6 + 0.3 * rng.random()), H * 0.16
    d.ellipse([sx - r, sy - r, sx + r, sy + r], fill=pc(ACCENT, SUN), outline=INK, width=lw)
    d.ellipse([-W * 0.3, H * 0.45, W * 0.7, H * 0.95], fill=pc(FAR, DUNE), outline=INK, width=lw)
    d.ellipse([W * 0.3, H * 0.5, W * 1.4, H * 1.0], fill=pc(FAR, DUNE), outline=INK, width=lw)
    d.rectangle([-lw, H * 0.68, W + lw, H + lw], fill=pc(GROUND, (205, 165, 100)), outline=INK, width=lw)
    cx = W * (0.1 + 0.8 * rng.random())
    cw = W * 0.03
    c = pc(MID, CACTUS)
    d.rounded_rectangle([cx - cw, H * 0.38, cx + cw, H * 0.72], radius=cw, fill=c, outline=INK, width=lw)
    d.rounded_rectangle([cx - cw * 3.2, H * 0.44, cx - cw * 1.6, H * 0.58], radius=cw * 0.8, fill=c, outline=INK, width=lw)
    d.rectangle([cx - cw * 3.2 + lw, H * 0.54, cx - cw + lw, H * 0.58], fill=c, outline=INK, width=lw)
    d.rounded_rectangle([cx + cw * 1.6, H * 0.4, cx + cw * 3.2, H * 0.54], radius=cw * 0.8, fill=c, outline=INK, width=lw)
    d.rectangle([cx + cw - lw, H * 0.5, cx + cw * 3.2 - lw, H * 0.54], fill=c, outline=INK, width=lw)


def _pine(d, x, base, h, w, pc, lw):
    d.rectangle([x - w * 0.12, base - h * 0.2, x + w * 0.12, base], fill=pc(GROUND, TRUNK), outline=INK, width=lw)
    for k in range(3):
        y0 = base - h * (0.15 + 0.28 * k)
        ww = w * (1 - 0.25 * k)
        _poly(d, [(x - ww, y0), (x + ww, y0), (x, y0 - h * 0.42)], pc(MID, (45, 90, 72)), lw)
        _poly(d, [(x - ww * 0.35, y0 - h * 0.27), (x + ww * 0.35, y0 - h * 0.27), (x, y0 - h * 0.42)], pc(LIGHT, SNOW), 0)


def _bg_snowfield(d, W, H, rng, pc, lw):
    d.rectangle([0, 0, W, H], fill=pc(LIGHT, (196, 212, 235)))
    r = min(W, H) * 0.06
    d.ellipse([W * 0.8 - r, H * 0.14 - r, W * 0.8 + r, H * 0.14 + r], fill=pc(ACCENT, (250, 235, 200)), outline=INK, width=lw)
    pts = [(-lw, H * 0.58)] + [(W * i / 5, H * (0.42 + 0.1 * rng.random())) for i in range(6)] + [(W + lw, H * 0.58)]
    _poly(d, pts, pc(FAR, (215, 222, 236)), lw)
    d.rectangle([-lw, H * 0.56, W + lw, H + lw], fill=pc(GROUND, SNOW), outline=INK, width=lw)
    n = int(rng.integers(4, 7))
    for i in range(n):
        x = W * (i + 0.5 * rng.random()) / n
        _pine(d, x, H * (0.6 + 0.06 * rng.random()), H * 0.4, W * 0.06, pc, lw)
    for _ in range(25):
        x, y, s = W * rng.random(), H * rng.random() * 0.9, max(1.0, min(W, H) * 0.006)
        d.ellipse([x - s, y - s, x + s, y + s], fill=pc(LIGHT, SNOW))


def _bg_laboratory(d, W, H, rng, pc, lw):
    d.rectangle([0, 0, W, H], fill=pc(LIGHT, LAB_WALL))
    for i in range(1, 8):
        d.line([(W * i / 8, 0), (W * i / 8, H * 0.55)], fill=INK, width=max(1, lw // 2))
    d.rectangle([W * 0.05, H * 0.12, W * 0.45, H * 0.15], fill=pc(MID, STEEL), outline=INK, width=lw)
    for k in range(5):
        bx = W * (0.07 + 0.075 * k)
        d.rectangle([bx, H * 0.04, bx + W * 0.04, H * 0.12], fill=pc(ACCENT, LIQUID if k % 2 else (200, 150, 210)), outline=INK, width=max(1, lw // 2))
    d.rectangle([-lw, H * 0.55, W + lw, H * 0.59], fill=pc(MID, STEEL), outline=INK, width=lw)
    d.rectangle([-lw, H * 0.59, W + lw, H * 0.76], fill=pc(FAR, (160, 170, 182)), outline=INK, width=lw)
    for i in range(6):
        x = W * (i + 0.5) / 6
        d.line([(x, H * 0.59), (x, H * 0.76)], fill=INK, width=max(1, lw // 2))
    x = W * 0.05
    while x < W * 0.9:
        fw = W * (0.05 + 0.03 * rng.random())
        fh = H * (0.1 + 0.08 * rng.random())
        liquid = pc(ACCENT, LIQUID if rng.random() < 0.5 else (200, 150, 210))
        _poly(d, [(x, H * 0.55), (x + fw, H * 0.55), (x + fw * 0.62, H * 0.55 - fh * 0.55), (x + fw * 0.62, H * 0.55 - fh), (x + fw * 0.38, H * 0.55 - fh), (x + fw * 0.38, H * 0.55 - fh * 0.55)], pc(LIGHT, (225, 240, 245)), lw)
        _poly(d, [(x + fw * 0.1, H * 0.55 - lw), (x + fw * 0.9, H * 0.55 - lw), (x + fw * 0.7, H * 0.55 - fh * 0.35), (x + fw * 0.3, H * 0.55 - fh * 0.35)], liquid, 0)
        x += fw + W * (0.06 + 0.08 * rng.random())
    d.rectangle([-lw, H * 0.76, W + lw, H + lw], fill=pc(GROUND, (150, 155, 160)), outline=INK, width=lw)


def _bg_market(d, W, H, rng, pc, lw):
    d.rectangle([0, 0, W, H], fill=pc(LIGHT, SKY))
    d.rectangle([-lw, H * 0.62, W + lw, H + lw], fill=pc(GROUND, (150, 138, 120)), outline=INK, width=lw)
    for i in range(12):
        y = H * (0.66 + 0.03 * i)
        if y < H:
            d.line([(0, y), (W, y)], fill=INK, width=max(1, lw // 2))
    n = 3
    for i in range(n):
        x0 = W * (i / n + 0.02)
        x1 = W * ((i + 1) / n - 0.02)
        d.rectangle([x0 + W * 0.01, H * 0.2, x0 + W * 0.025, H * 0.62], fill=pc(MID, WOOD), outline=INK, width=lw)
        d.rectangle([x1 - W * 0.025, H * 0.2, x1 - W * 0.01, H * 0.62], fill=pc(MID, WOOD), outline=INK, width=lw)
        d.rectangle([x0, H * 0.45, x1, H * 0.62], fill=pc(MID, WOOD), outline=INK, width=lw)
        stripes = 6
        sw = (x1 - x0) / stripes
        for s in range(stripes):
            col = pc(ACCENT, AWNING) if s % 2 == 0 else pc(LIGHT, (240, 232, 215))
            _poly(d, [(x0 + s * sw, H * 0.14), (x0 + (s + 1) * sw, H * 0.14), (x0 + (s + 1) * sw, H * 0.24), (x0 + s * sw, H * 0.24)], col, lw)
        x = x0 + W * 0.02
        while x < x1 - W * 0.04:
            r = W * 0.018
            col = pc(ACCENT, FLOWERS[int(rng.integers(len(FLOWERS)))])
            d.ellipse([x, H * 0.45 - 2 * r, x + 2 * r, H * 0.45], fill=col, outline=INK, width=max(1, lw // 2))
            x += 2 * r + W * 0.006


def _bg_station(d, W, H, rng, pc, lw):
    d.rectangle([0, 0, W, H], fill=pc(LIGHT, (205, 200, 190)))
    d.rectangle([-lw, H * 0.02, W + lw, H * 0.08], fill=pc(MID, STEEL), outline=INK, width=lw)
    tx = -W * 0.2 * rng.random()
    d.rounded_rectangle([tx, H * 0.24, tx + W * 1.4, H * 0.55], radius=W * 0.04, fill=pc(ACCENT, TRAIN), outline=INK, width=lw)
    wx = tx + W * 0.05
    while wx < W:
        d.rectangle([wx, H * 0.29, wx + W * 0.09, H * 0.4], fill=pc(LIGHT, PANE), outline=INK, width=max(1, lw // 2))
        wx += W * 0.14
    d.rectangle([-lw, H * 0.55, W + lw, H * 0.64], fill=pc(FAR, (110, 100, 95)), outline=INK, width=lw)
    for y in (0.58, 0.62):
        d.line([(0, H * y), (W, H * y)], fill=INK, width=max(1, lw))
    d.rectangle([-lw, H * 0.64, W + lw, H + lw], fill=pc(GROUND, (172, 166, 156)), outline=INK, width=lw)
    d.rectangle([-lw, H * 0.665, W + lw, H * 0.69], fill=pc(ACCENT, (240, 205, 80)))
    for x in (W * 0.15, W * 0.85):
        d.rectangle([x - W * 0.015, H * 0.08, x + W * 0.015, H * 0.64], fill=pc(MID, STEEL), outline=INK, width=lw)


def _bg_library(d, W, H, rng, pc, lw):
    d.rectangle([0, 0, W, H], fill=pc(LIGHT, (200, 175, 140)))
    d.rectangle([-lw, H * 0.74, W + lw, H + lw], fill=pc(GROUND, CARPET), outline=INK, width=lw)
    n = 3
    for i in range(n):
        x0, x1 = W * (i / n + 0.02), W * ((i + 1) / n - 0.02)
        d.rectangle([x0, H * 0.06, x1, H * 0.74], fill=pc(FAR, SHELF), outline=INK, width=lw)
        for s in range(4):
            y1 = H * (0.2 + 0.16 * s)
            d.rectangle([x0, y1, x1, y1 + H * 0.02], fill=pc(MID, WOOD), outline=INK, width=max(1, lw // 2))
            x = x0 + W * 0.015
            while x < x1 - W * 0.03:
                bw = W * (0.012 + 0.014 * rng.random())
                bh = H * (0.08 + 0.045 * rng.random())
                col = pc(ACCENT, BOOKS[int(rng.integers(len(BOOKS)))])
                d.rectangle([x, y1 - bh, x + bw, y1], fill=col, outline=INK, width=max(1, lw // 2))
                x += bw + max(1.0, W * 0.002)


def _bg_garden(d, W, H, rng, pc, lw):
    d.rectangle([0, 0, W, H], fill=pc(LIGHT, SKY))
    d.rectangle([-lw, H * 0.42, W + lw, H * 0.64], fill=pc(FAR, (60, 112, 62)), outline=INK, width=lw)
    for i in range(9):
        x = W * i / 8
        r = W * 0.075
        d.pieslice([x - r, H * 0.42 - r * 0.8, x + r, H * 0.42 + r * 0.8], 180, 360, fill=pc(FAR, (60, 112, 62)), outline=INK, width=lw)
    d.rectangle([-lw, H * 0.62, W + lw, H + lw], fill=pc(GROUND, GRASS), outline=INK, width=lw)
    for i in range(5):
        x = W * (0.1 + 0.2 * i + 0.04 * rng.random())
        d.ellipse([x - W * 0.04, H * (0.72 + 0.05 * (i % 2)), x + W * 0.04, H * (0.76 + 0.05 * (i % 2))], fill=pc(MID, STONE), outline=INK, width=lw)
    for _ in range(14):
        x = W * rng.random()
        y = H * (0.58 + 0.4 * rng.random())
        r = min(W, H) * 0.022
        d.line([(x, y), (x, y + r * 2.5)], fill=pc(MID, (70, 120, 60)), width=max(1, lw // 2))
        d.ellipse([x - r, y - r, x + r, y + r], fill=pc(ACCENT, FLOWERS[int(rng.integers(len(FLOWERS)))]), outline=INK, width=max(1, lw // 2))


BACKGROUNDS: dict[str, Painter] = {
    "forest": _bg_forest,
    "beach": _bg_beach,
    "street": _bg_street,
    "room": _bg_room,
    "shop": _bg_shop,
    "hall": _bg_hall,
    "lighthouse": _bg_lighthouse,
    "harbor": _bg_harbor,
    "mountain": _bg_mountain,
    "desert": _bg_desert,
    "snowfield": _bg_snowfield,
    "laboratory": _bg_laboratory,
    "market": _bg_market,
    "station": _bg_station,
    "library": _bg_library,
    "garden": _bg_garden,
}


@lru_cache(maxsize=64)
def draw_background(
    kind: str,
    place: str,
    palette: tuple[RGB, ...],
    width: int,
    height: int,
    lw: int,
    palette_weight: float,
) -> np.ndarray:
    """Flat (unstyled) background: shapes filled with palette/canonical mixes, outlined
    in INK. The layout is seeded by (kind, place) only, so a place looks the same in
    every frame. palette_weight 1.0 paints pure palette colours (style references)."""
    if kind not in BACKGROUNDS:
        raise ValueError(f"unknown location kind {kind!r}")
    img = Image.new("RGB", (width, height))
    d = ImageDraw.Draw(img)
    rng = np.random.default_rng(stable_seed("layout", kind, place))

    def pc(role: int, canonical: RGB) -> RGB:
        return _mix(canonical, tuple(palette[role]), palette_weight)

    BACKGROUNDS[kind](d, width, height, rng, pc, lw)
    out = np.asarray(img)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=32)
def _styled_background(kind: str, place: str, style: StyleParams, width: int, height: int) -> np.ndarray:
    """Background with every seed-independent style effect; cached per place so the
    frames of one scene only pay for grain and figures."""
    lw = line_px(style.line_weight, width, height)
    flat = draw_background(kind, place, style.palette, width, height, lw, FRAME_PALETTE_WEIGHT)
    out = style_background(flat, style)
    out.setflags(write=False)
    return out


# --------------------------------------------------------------------- figures

# Joint positions in figure units: x to the image right, y up, feet at y=0, about
# 100 units tall. "a" is the image-left limb, "b" the image-right one.
STAND: dict[str, tuple[float, float]] = {
    "head": (0, 88),
    "sh_a": (-12, 75), "sh_b": (12, 75),
    "el_a": (-16, 58), "el_b": (16, 58),
    "hd_a": (-17.5, 43), "hd_b": (17.5, 43),
    "hip_a": (-5.5, 46), "hip_b": (5.5, 46),
    "kn_a": (-6, 24), "kn_b": (6, 24),
    "ft_a": (-6.5, 3), "ft_b": (6.5, 3),
}
UPPER = ("head", "sh_a", "sh_b", "el_a", "el_b", "hd_a", "hd_b", "hip_a", "hip_b")
HEAD_R = 9.0
LEG_W = 9.0
ARM_W = 6.0
# How far the upper body drops for each action.
LIFT = {"sit": -16.0, "squat": -24.0}
POSE_CHANGES: dict[str, dict[str, tuple[float, float]]] = {
    "stand": {},
    "walk": {"kn_a": (-9, 24), "ft_a": (-16, 3), "kn_b": (9, 25), "ft_b": (16, 3),
             "el_a": (-19, 61), "hd_a": (-25, 51), "el_b": (15, 59), "hd_b": (11, 45)},
    "sit": {"kn_a": (-13, 31), "ft_a": (-12, 3), "kn_b": (13, 31), "ft_b": (12, 3),
            "el_a": (-17, 44), "hd_a": (-13, 34), "el_b": (17, 44), "hd_b": (13, 34)},
    "squat": {"kn_a": (-16, 27), "ft_a": (-9, 3), "kn_b": (16, 27), "ft_b": (9, 3),
              "el_a": (-17, 36), "hd_a": (-15, 28), "el_b": (17, 36), "hd_b": (15, 28)},
    "look": {"el_b": (22, 80), "hd_b": (9, 90)},
    "talk": {"el_b": (20, 62), "hd_b": (26, 71)},
    "hold": {"el_b": (22, 67), "hd_b": (31, 65)},
    "hug": {},
}
# Horizontal room (figure units) each kind of group needs.
SLOT_UNITS = 54.0
HOLD_SLOT_UNITS = 66.0
HUG_SLOT_UNITS = 80.0
FIGURE_HEIGHT = 0.6  # of image height, when width allows
GROUND_Y = 0.93  # feet line, fraction of image height


def pose(action: str) -> dict[str, tuple[float, float]]:
    """Joints for an action (hug partners are posed in _draw_group)."""
    joints = dict(STAND)
    lift = LIFT.get(action, 0.0)
    for k in UPPER:
        x, y = joints[k]
        joints[k] = (x, y + lift)
    for k, (x, y) in POSE_CHANGES.get(action, {}).items():
        joints[k] = (x, y + (lift if k in UPPER else 0.0))
    return joints


def hair_colour(appearance: str) -> RGB:
    """The hair colour the appearance text names, if any."""
    words = appearance.lower().replace(",", " ").split()
    for i, w in enumerate(words[:-1]):
        if words[i + 1].startswith("hair") or (i + 2 < len(words) and words[i + 2].startswith("hair")):
            if w in HAIR_COLOURS:
                return HAIR_COLOURS[w]
    for w in words:
        if w in ("bald",):
            return SKIN_TONES[0]
    return DEFAULT_HAIR


class _Pen:
    """Maps figure units to pixels for one figure (origin at its feet)."""

    def __init__(self, d: ImageDraw.ImageDraw, cx: float, ground: float, u: float, lw: int):
        self.d, self.cx, self.ground, self.u, self.lw = d, cx, ground, u, lw

    def p(self, pt: tuple[float, float]) -> tuple[float, float]:
        return (self.cx + pt[0] * self.u, self.ground - pt[1] * self.u)

    def limb(self, pts, width: float, colour: RGB, outline: bool) -> None:
        px = [self.p(q) for q in pts]
        w = max(1, round(width * self.u)) + (2 * self.lw if outline else 0)
        c = INK if outline else colour
        self.d.line(px, fill=c, width=w, joint="curve")
        for x, y in (px[0], px[-1]):
            r = w / 2
            self.d.ellipse([x - r, y - r, x + r, y + r], fill=c)

    def disc(self, centre, r: float, colour: RGB, outline: bool = True) -> None:
        x, y = self.p(centre)
        rp = r * self.u
        self.d.ellipse([x - rp, y - rp, x + rp, y + rp], fill=colour, outline=INK if outline else None,
                       width=self.lw if outline else 0)

    def poly(self, pts, colour: RGB, outline: bool = True) -> None:
        self.d.polygon([self.p(q) for q in pts], fill=colour, outline=INK if outline else None,
                       width=self.lw if outline else 0)


def _torso(j) -> list[tuple[float, float]]:
    (ax, ay), (bx, by) = j["sh_a"], j["sh_b"]
    (hax, hay), (hbx, hby) = j["hip_a"], j["hip_b"]
    return [(ax - 0.5, ay + 2), (bx + 0.5, by + 2), (hbx + 5, hby - 2), (hax - 5, hay - 2)]


def _draw_body(pen: _Pen, j, clothing: RGB, skin: RGB, sitting: bool) -> None:
    """Legs, torso and neck in one outlined silhouette (clothing stays one region)."""
    if sitting:
        pen.poly([(-15, 0), (15, 0), (15, 27), (-15, 27)], STOOL)
    legs = [(j["hip_a"], j["kn_a"], j["ft_a"]), (j["hip_b"], j["kn_b"], j["ft_b"])]
    hx, hy = j["head"]
    neck = [(hx, hy - 6), (hx, hy - 14)]
    for outline in (True, False):
        for leg in legs:
            pen.limb(leg, LEG_W, clothing, outline)
        pen.limb(neck, 5, skin, outline)
        if outline:
            pen.d.polygon([pen.p(q) for q in _torso(j)], fill=INK, outline=INK, width=2 * pen.lw + 1)
        else:
            pen.poly(_torso(j), clothing, outline=False)
    for f in (j["ft_a"], j["ft_b"]):
        x, y = pen.p(f)
        r = 5.0 * pen.u
        pen.d.ellipse([x - r * 1.3, y - r * 0.7, x + r * 1.3, y + r + pen.lw], fill=INK)


def _draw_arm(pen: _Pen, j, side: str, clothing: RGB, skin: RGB) -> None:
    arm = (j["sh_" + side], j["el_" + side], j["hd_" + side])
    pen.limb(arm, ARM_W, clothing, True)
    pen.limb(arm, ARM_W, clothing, False)
    pen.disc(j["hd_" + side], 3.6, skin)


def _draw_head(pen: _Pen, j, skin: RGB, hair: RGB, expression: str, action: str, tilt: float = 0.0) -> None:
    hx, hy = j["head"]
    hx += tilt
    u, d = pen.u, pen.d
    cx, cy = pen.p((hx, hy))
    r = HEAD_R * u
    d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=skin, outline=INK, width=pen.lw)
    d.chord([cx - r, cy - r, cx + r, cy + r * 0.5], 180, 360, fill=hair, outline=INK, width=pen.lw)
    fw = max(1, round(u * 1.1))  # facial line width
    look = 0.22 * r if action == "look" else 0.0
    ey = cy + 0.12 * r
    er = max(1.0, 0.13 * r)
    for sx in (-1, 1):
        ex = cx + sx * 0.38 * r + look
        if expression == "laughing":
            d.arc([ex - er * 1.6, ey - er, ex + er * 1.6, ey + er * 1.4], 200, 340, fill=INK, width=fw)
        elif expression == "surprised":
            d.ellipse([ex - er * 1.4, ey - er * 1.4, ex + er * 1.4, ey + er * 1.4], fill=skin, outline=INK, width=fw)
            d.ellipse([ex - er * 0.7, ey - er * 0.7, ex + er * 0.7, ey + er * 0.7], fill=INK)
        else:
            d.ellipse([ex - er, ey - er, ex + er, ey + er], fill=INK)
        # brows: inner end up (worried/sad), down (frowning/determined), high (surprised)
        bx0, bx1 = ex - sx * 0.22 * r, ex + sx * 0.22 * r  # inner, outer
        by = ey - 0.32 * r
        inner = {"worried": -0.14, "sad": -0.12, "frowning": 0.12, "determined": 0.14, "surprised": -0.12}.get(expression, 0.0) * r
        outer = -0.12 * r if expression == "surprised" else 0.0
        d.line([(bx0, by + inner), (bx1, by + outer)], fill=INK, width=fw)
    mx, my, mw = cx + look * 0.6, cy + 0.55 * r, 0.34 * r
    talking = action == "talk"
    if expression in ("laughing",) or (talking and expression in ("smiling", "calm", "determined")):
        d.chord([mx - mw, my - mw * 0.7, mx + mw, my + mw * 0.9], 0, 180, fill=MOUTH, outline=INK, width=fw)
    elif expression == "surprised" or talking:
        d.ellipse([mx - mw * 0.45, my - mw * 0.45, mx + mw * 0.45, my + mw * 0.55], fill=MOUTH, outline=INK, width=fw)
    elif expression == "smiling":
        d.arc([mx - mw, my - mw * 0.9, mx + mw, my + mw * 0.5], 20, 160, fill=INK, width=fw)
    elif expression in ("frowning", "sad"):
        d.arc([mx - mw, my - mw * 0.1, mx + mw, my + mw * 1.2], 200, 340, fill=INK, width=fw)
    elif expression == "worried":
        q = mw / 2
        d.line([(mx - mw, my), (mx - q, my - q * 0.5), (mx, my), (mx + q, my - q * 0.5), (mx + mw, my)], fill=INK, width=fw)
    else:  # calm, determined
        d.line([(mx - mw * (1.0 if expression == "determined" else 0.7), my), (mx + mw * (1.0 if expression == "determined" else 0.7), my)], fill=INK, width=fw)
    if expression == "sad":
        tx, ty = cx - 0.38 * r, ey + er * 2.2
        t = max(1.0, 0.12 * r)
        d.ellipse([tx - t, ty - t, tx + t, ty + t * 1.6], fill=TEAR)
    if talking:  # speech marks beside the mouth
        ox = cx + r * 1.25
        for dy in (-0.5, 0.0, 0.5):
            d.line([(ox, my + dy * r * 0.9 - 0.2 * r), (ox + 0.5 * r, my + dy * r * 1.5 - 0.2 * r)], fill=INK, width=max(1, fw))


def _draw_object(pen: _Pen, hand: tuple[float, float], obj: str) -> None:
    """A distinct icon per object, about the size of the head, held at the hand."""
    main, detail = OBJECT_COLOURS[obj]
    x, y = pen.p(hand)
    s = 8.0 * pen.u  # half-size in pixels
    d, lw = pen.d, max(1, pen.lw)
    if obj == "book":
        d.rectangle([x - s * 0.8, y - s * 1.1, x + s * 0.8, y + s * 0.2], fill=main, outline=INK, width=lw)
        d.rectangle([x - s * 0.55, y - s * 0.95, x + s * 0.55, y - s * 0.55], fill=detail)
    elif obj == "lantern":
        d.line([(x, y), (x, y + s * 0.4)], fill=INK, width=lw)
        d.rectangle([x - s * 0.55, y + s * 0.4, x + s * 0.55, y + s * 1.6], fill=main, outline=INK, width=lw)
        d.rectangle([x - s * 0.35, y + s * 0.6, x + s * 0.35, y + s * 1.4], fill=detail)
    elif obj == "sword":
        bw = max(2, round(s * 0.4))
        d.line([(x, y), (x + s * 1.2, y - s * 2.6)], fill=INK, width=bw + 2)
        d.line([(x, y), (x + s * 1.2, y - s * 2.6)], fill=main, width=bw)
        d.line([(x - s * 0.3, y - s * 0.5), (x + s * 0.6, y - s * 0.05)], fill=detail, width=max(2, round(s * 0.25)))
    elif obj == "cup":
        d.rectangle([x - s * 0.5, y - s * 0.9, x + s * 0.5, y + s * 0.2], fill=main, outline=INK, width=lw)
        d.arc([x + s * 0.3, y - s * 0.7, x + s * 0.9, y - s * 0.1], 270, 90, fill=INK, width=lw)
    elif obj == "letter":
        d.rectangle([x - s, y - s * 0.8, x + s * 0.6, y + s * 0.2], fill=main, outline=INK, width=lw)
        d.line([(x - s, y - s * 0.8), (x - s * 0.2, y - s * 0.25), (x + s * 0.6, y - s * 0.8)], fill=detail, width=lw)
    elif obj == "flower":
        d.line([(x, y + s * 0.3), (x + s * 0.2, y - s * 1.3)], fill=main, width=max(1, round(s * 0.15)))
        for k in range(5):
            a = 2 * math.pi * k / 5
            px, py = x + s * 0.2 + math.cos(a) * s * 0.4, y - s * 1.5 + math.sin(a) * s * 0.4
            d.ellipse([px - s * 0.3, py - s * 0.3, px + s * 0.3, py + s * 0.3], fill=detail, outline=INK, width=1)
        d.ellipse([x + s * 0.05, y - s * 1.65, x + s * 0.35, y - s * 1.35], fill=OBJECT_COLOURS["key"][0])
    elif obj == "umbrella":
        d.line([(x, y + s * 0.3), (x, y - s * 1.6)], fill=detail, width=max(1, round(s * 0.15)))
        d.pieslice([x - s * 1.3, y - s * 2.6, x + s * 1.3, y - s * 0.9], 180, 360, fill=main, outline=INK, width=lw)
    elif obj == "key":
        kw = max(2, round(s * 0.3))
        for c, extra in ((INK, 2), (main, 0)):
            d.ellipse([x - s * 0.3, y - s, x + s * 0.55, y - s * 0.15], outline=c, width=kw + extra)
            d.line([(x + s * 0.5, y - s * 0.58), (x + s * 1.6, y - s * 0.58)], fill=c, width=kw + extra)
            d.line([(x + s * 1.35, y - s * 0.58), (x + s * 1.35, y - s * 0.1)], fill=c, width=kw + extra)
    elif obj == "map":
        d.rectangle([x - s, y - s * 1.1, x + s * 0.8, y + s * 0.1], fill=main, outline=INK, width=lw)
        for fx in (-0.4, 0.2):
            d.line([(x + s * fx, y - s * 1.1), (x + s * fx, y + s * 0.1)], fill=INK, width=1)
        d.line([(x + s * 0.3, y - s * 0.8), (x + s * 0.6, y - s * 0.5)], fill=detail, width=lw)
        d.line([(x + s * 0.6, y - s * 0.8), (x + s * 0.3, y - s * 0.5)], fill=detail, width=lw)
    elif obj == "basket":
        d.arc([x - s * 0.8, y - s * 0.6, x + s * 0.8, y + s * 0.9], 180, 360, fill=detail, width=max(1, round(s * 0.15)))
        d.chord([x - s, y - s * 0.2, x + s, y + s * 1.4], 0, 180, fill=main, outline=INK, width=lw)
    elif obj == "phone":
        d.rounded_rectangle([x - s * 0.4, y - s * 1.2, x + s * 0.4, y + s * 0.1], radius=s * 0.15, fill=main, outline=INK, width=lw)
        d.rectangle([x - s * 0.28, y - s * 1.0, x + s * 0.28, y - s * 0.15], fill=detail)
    elif obj == "camera":
        d.rectangle([x - s, y - s * 0.9, x + s, y + s * 0.3], fill=main, outline=INK, width=lw)
        d.rectangle([x - s * 0.7, y - s * 1.2, x - s * 0.2, y - s * 0.9], fill=main, outline=INK, width=lw)
        d.ellipse([x - s * 0.45, y - s * 0.75, x + s * 0.45, y + s * 0.15], fill=detail, outline=INK, width=lw)
    else:
        raise ValueError(f"unknown object {obj!r}")


def _skin(ch: Character) -> RGB:
    return SKIN_TONES[stable_seed("skin", ch.char_id, ch.appearance) % len(SKIN_TONES)]


def _draw_figure(pen: _Pen, ch: Character, j, action: str, expression: str, held: str | None, hug_side: str | None) -> None:
    """One character: body, arms, head, object. hug_side names the arm that wraps a
    partner; it is drawn later by the caller, after both bodies."""
    clothing = CLOTHING_COLOURS[ch.clothing_colour]
    skin = _skin(ch)
    _draw_body(pen, j, clothing, skin, action == "sit")
    for side in ("a", "b"):
        if side != hug_side:
            _draw_arm(pen, j, side, clothing, skin)
    tilt = {"a": -2.5, "b": 2.5}.get(hug_side or "", 0.0)
    _draw_head(pen, j, skin, hair_colour(ch.appearance), expression, action, tilt)
    if held:
        hand = j["hd_a"] if hug_side == "b" else j["hd_b"]
        _draw_object(pen, hand, held)
        side = "a" if hug_side == "b" else "b"
        pen.disc(j["hd_" + side], 3.6, skin)


def render_frame(frame: Frame, characters: dict[str, Character], style: StyleParams, width: int, height: int, seed: int) -> np.ndarray:
    """One keyframe, HxWx3 uint8. Deterministic in (frame, characters, style, size, seed)."""
    bg = _styled_background(frame.location_kind, frame.location, style, width, height)
    img = keep_clear_of_clothing(add_grain(bg, style.grain, stable_seed("grain", seed, frame.frame_index)))
    pil = Image.fromarray(img)
    d = ImageDraw.Draw(pil)
    cast = [characters[c] for c in frame.characters]
    # groups: a hug pairs the first two characters; everyone else stands alone
    groups: list[list[int]] = []
    i = 0
    while i < len(cast):
        if frame.action == "hug" and i == 0 and len(cast) >= 2:
            groups.append([0, 1])
            i = 2
        else:
            groups.append([i])
            i += 1
    widths = [HUG_SLOT_UNITS if len(g) == 2 else (HOLD_SLOT_UNITS if g[0] == 0 and (frame.held_object or frame.action == "hold") else SLOT_UNITS) for g in groups]
    if not groups:
        return np.asarray(pil).copy()
    u = min(FIGURE_HEIGHT * height / 100, 0.96 * width / sum(widths))
    lw = min(line_px(style.line_weight, width, height), max(1, round(u * 1.5)))
    ground = GROUND_Y * height
    x = (width - u * sum(widths)) / 2
    for g, w in zip(groups, widths):
        cx = x + u * w / 2
        x += u * w
        if len(g) == 1:
            k = g[0]
            action = frame.action
            if action == "hug":  # a lone hugger hugs themself: arms crossed in front
                j = pose("stand")
                j.update({"el_a": (-14, 58), "hd_a": (7, 62), "el_b": (14, 58), "hd_b": (-7, 62)})
            else:
                j = pose(action)
            held = frame.held_object if k == 0 else None
            if k == 0 and w == HOLD_SLOT_UNITS and action != "hold":
                cx -= 4 * u  # the object sticks out to the right
            elif k == 0 and action == "hold":
                cx -= 6 * u
            _draw_figure(_Pen(d, cx, ground, u, lw), cast[k], j, action, frame.expression, held, None)
            continue
        # hug: two bodies touching, inner arms wrapped across the partner's back
        left, right = cast[g[0]], cast[g[1]]
        ja, jb = pose("stand"), pose("stand")
        ja.update({"el_b": (21, 66), "hd_b": (30, 63)})
        jb.update({"el_a": (-21, 62), "hd_a": (-30, 59)})
        pa, pb = _Pen(d, cx - 13 * u, ground, u, lw), _Pen(d, cx + 13 * u, ground, u, lw)
        _draw_figure(pa, left, ja, "hug", frame.expression, frame.held_object if g[0] == 0 else None, "b")
        _draw_figure(pb, right, jb, "hug", frame.expression, None, "a")
        _draw_arm(pa, ja, "b", CLOTHING_COLOURS[left.clothing_colour], _skin(left))
        _draw_arm(pb, jb, "a", CLOTHING_COLOURS[right.clothing_colour], _skin(right))
    return np.asarray(pil).copy()


class OfflineRenderer:
    """Stage 3 offline: draws every frame of a plot in the movie's fitted style."""

    name = "offline"

    def identity(self) -> str:
        """Goes into cache keys: bump when drawings change."""
        return "offline-render/1"

    def render(self, plot: MoviePlot, style: StyleParams, width: int, height: int, seed: int) -> list[np.ndarray]:
        """One image per plot.frames, in order; frame i uses seed + frame_index (as the method does)."""
        chars = {c.char_id: c for c in plot.movie.characters}
        # backgrounds are in this movie's palette: the ones cached for other movies never serve
        # again, so a worker's memory stays one movie's, however many movies it draws
        _styled_background.cache_clear()
        draw_background.cache_clear()
        return [render_frame(f, chars, style, width, height, seed + f.frame_index) for f in plot.frames]
