"""Offline style immobilization: a movie's look as a few parameters.

The method learns one token embedding per movie from ~10 style images. Offline we
do the same thing in miniature: the style description gives a target spec, we draw
reference images in it, and fit_style estimates the parameters back from pixels
alone. The renderer then uses the fitted parameters, so every frame carries the
look the references show (as a learned token would), not the words.
"""

from __future__ import annotations

import colorsys
import math
import re

import numpy as np

from ..core.plot import Movie
from ..core.vocabulary import LOCATION_KINDS
from ..render.look import RGB, TEXTURE_KINDS, StyleParams
from ..render.offline import (
    INK,
    LIGHT_GAIN,
    add_grain,
    draw_background,
    light_coords,
    line_px,
    stable_seed,
    style_background,
    texture_pattern,
    texture_period,
)

# Palette construction: colour = lum + chroma * unit hue vector. Roles have fixed
# brightness offsets (light, far, mid, ground, accent) and a fixed chroma, so the
# fit can read brightness level, contrast and saturation back from the colours.
PALETTE_CHROMA = 72.0
ROLE_LUM = (48.0, 4.0, -18.0, -40.0, 24.0)
ROLE_LUM_STD = float(np.std(ROLE_LUM))
# At most this many pixels go into the palette k-means.
KMEANS_SAMPLE = 10000
# Roles by descending brightness: how fit_style puts fitted colours back in role order.
ROLES_BY_LUM = tuple(int(i) for i in np.argsort(ROLE_LUM)[::-1])

# What words ask for. Later words override earlier ones; the keyword comes last.
_DARK = {"brightness": 100.0, "saturation": 0.6, "lighting": 0.8, "contrast": 1.2}
_BRIGHT = {"brightness": 148.0, "saturation": 1.3, "grain": 1.5, "lighting": 0.2, "contrast": 1.0}
_VINTAGE = {"hue": 35.0, "saturation": 0.6, "grain": 16.0, "contrast": 0.85, "texture_kind": "canvas", "texture": 0.5}
_SKETCH = {"texture_kind": "hatch", "texture": 0.75, "line_weight": 5}
_PAINT = {"texture_kind": "canvas", "texture": 0.7, "line_weight": 2}
_DOTS = {"texture_kind": "stipple", "texture": 0.7}
_DRAMA = {"contrast": 1.25, "lighting": 0.7}
_SOFT = {"contrast": 0.82, "lighting": 0.25, "grain": 2.0}
_CLEAN = {"texture_kind": "none", "grain": 0.5, "line_weight": 2}
_GRITTY = {"grain": 15.0, "texture_kind": "stipple", "texture": 0.4}
WORD_TRAITS: dict[str, dict] = {
    "dark": _DARK, "gloomy": _DARK, "eerie": _DARK, "moody": _DARK, "ominous": _DARK,
    "shadowy": _DARK, "grim": _DARK, "mysterious": {**_DARK, "hue": 250.0}, "somber": _DARK,
    "melancholic": {**_DARK, "hue": 215.0},
    "gothic": {**_DARK, "hue": 280.0, "saturation": 0.65, "lighting": 0.85, "grain": 6.0},
    "noir": {**_DARK, "saturation": 0.4, "lighting": 0.9, "contrast": 1.3, "grain": 10.0},
    "horror": {**_DARK, "hue": 110.0, "saturation": 0.55, "grain": 8.0},
    "whimsical": {**_BRIGHT, "line_weight": 3}, "bright": _BRIGHT, "cheerful": _BRIGHT,
    "playful": _BRIGHT, "sunny": {**_BRIGHT, "hue": 45.0}, "joyful": _BRIGHT,
    "colorful": _BRIGHT, "colourful": _BRIGHT, "vibrant": _BRIGHT,
    "cartoon": {**_BRIGHT, "line_weight": 5, "texture_kind": "none"},
    "anime": {**_BRIGHT, "line_weight": 3, "texture_kind": "none"},
    "magical": {**_BRIGHT, "hue": 290.0}, "fairytale": {**_BRIGHT, "hue": 320.0},
    "vintage": _VINTAGE, "retro": _VINTAGE, "nostalgic": _VINTAGE, "sepia": _VINTAGE,
    "historical": _VINTAGE, "faded": _VINTAGE, "antique": _VINTAGE, "old": _VINTAGE,
    "sketchy": _SKETCH, "hand-drawn": _SKETCH, "handdrawn": _SKETCH, "sketch": _SKETCH,
    "pencil": _SKETCH, "drawn": _SKETCH, "ink": _SKETCH, "comic": {**_SKETCH, "line_weight": 6},
    "painterly": _PAINT, "oil": _PAINT, "impressionist": _PAINT, "painted": _PAINT,
    "watercolor": {**_PAINT, "contrast": 0.8}, "watercolour": {**_PAINT, "contrast": 0.8},
    "pointillist": _DOTS, "dotted": _DOTS, "stipple": _DOTS, "halftone": _DOTS, "pop": {**_DOTS, "saturation": 1.35},
    "dramatic": _DRAMA, "cinematic": _DRAMA, "epic": _DRAMA, "intense": _DRAMA,
    "soft": _SOFT, "dreamy": {**_SOFT, "hue": 280.0}, "gentle": _SOFT, "tender": _SOFT,
    "romantic": {**_SOFT, "hue": 340.0}, "pastel": {**_SOFT, "brightness": 150.0},
    "warm": {"hue": 30.0}, "cold": {"hue": 205.0, "saturation": 0.8}, "icy": {"hue": 195.0, "saturation": 0.8},
    "wintry": {"hue": 205.0, "saturation": 0.8},
    "futuristic": {"hue": 190.0, "saturation": 1.3, "contrast": 1.2, "texture_kind": "none"},
    "sci-fi": {"hue": 190.0, "saturation": 1.3, "contrast": 1.2, "texture_kind": "none"},
    "cyberpunk": {"hue": 300.0, "saturation": 1.4, "contrast": 1.25, "brightness": 105.0},
    "neon": {"hue": 300.0, "saturation": 1.4, "contrast": 1.25},
    "minimalist": _CLEAN, "clean": _CLEAN, "flat": _CLEAN, "modern": _CLEAN, "simple": _CLEAN,
    "gritty": _GRITTY, "grainy": {"grain": 15.0}, "rough": _GRITTY, "raw": _GRITTY,
    "realistic": {"saturation": 0.9, "line_weight": 1}, "natural": {"saturation": 0.9, "line_weight": 1},
}


def hue_vector(hue_deg: float) -> np.ndarray:
    """Zero-mean RGB direction of a hue with max-min = 1 (adds chroma, not brightness)."""
    rgb = np.array(colorsys.hsv_to_rgb((hue_deg / 360.0) % 1.0, 1.0, 1.0))
    return rgb - rgb.mean()


def make_palette(brightness: float, hue: float, rng: np.random.Generator) -> tuple[RGB, ...]:
    """Five colours around a base hue (accent roughly complementary)."""
    offsets = (0.0, 20.0, -20.0, 10.0, 180.0)
    out = []
    for role, off in enumerate(offsets):
        h = hue + off + rng.uniform(-12, 12)
        c = brightness + ROLE_LUM[role] + PALETTE_CHROMA * hue_vector(h)
        out.append(tuple(int(v) for v in np.clip(np.round(c), 0, 255)))
    return tuple(out)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+(?:-[a-z]+)?", text.lower())


def style_spec(style_description: str, style_keyword: str, seed: int) -> StyleParams:
    """The style the description asks for. Words set what they name (WORD_TRAITS);
    the seed draws everything else and jitters the rest, so two movies with the same
    keyword still differ. Deterministic."""
    traits: dict = {}
    for w in _words(style_description) + _words(style_keyword):
        for cand in (w, w.replace("-", "")):
            if cand in WORD_TRAITS:
                traits.update(WORD_TRAITS[cand])
                break
    rng = np.random.default_rng(stable_seed("style", style_description, style_keyword, seed))

    def pick(key: str, lo: float, hi: float, jitter: float) -> float:
        if key in traits:
            return float(traits[key]) + rng.uniform(-jitter, jitter)
        return rng.uniform(lo, hi)

    brightness = pick("brightness", 108, 142, 6)
    hue = pick("hue", 0, 360, 15)
    kind = traits.get("texture_kind") or str(rng.choice(["none", "canvas", "hatch", "stipple"], p=[0.4, 0.3, 0.15, 0.15]))
    texture = 0.0 if kind == "none" else pick("texture", 0.35, 0.6, 0.05)
    return StyleParams(
        palette=make_palette(brightness, hue, rng),
        line_weight=int(round(np.clip(pick("line_weight", 2, 4, 0.4), 1, 8))),
        texture=round(float(np.clip(texture, 0, 1)), 3),
        texture_kind=kind,
        lighting=round(float(np.clip(pick("lighting", 0.3, 0.6, 0.05), 0, 1)), 3),
        light_angle=round(float(rng.uniform(0, 360)), 1),
        grain=round(float(np.clip(pick("grain", 3, 8, 1.0), 0, 20)), 2),
        saturation=round(float(np.clip(pick("saturation", 0.8, 1.1, 0.05), 0.35, 1.45)), 3),
        contrast=round(float(np.clip(pick("contrast", 0.9, 1.1, 0.04), 0.7, 1.3)), 3),
    )


def render_references(spec: StyleParams, count: int, size: int, seed: int) -> list[np.ndarray]:
    """Style images: generic scenes of varied location kinds, pure palette, in the spec's style."""
    kinds = np.random.default_rng(stable_seed("ref-kinds", seed)).permutation(len(LOCATION_KINDS))
    lw = line_px(spec.line_weight, size, size)
    out = []
    for i in range(count):
        kind = LOCATION_KINDS[int(kinds[i % len(kinds)])]
        flat = draw_background(kind, f"style-reference-{seed}-{i}", spec.palette, size, size, lw, 1.0)
        out.append(add_grain(style_background(flat, spec), spec.grain, stable_seed("ref-grain", seed, i)))
    return out


# ----------------------------------------------------------------------- fitting


def box_mean(a: np.ndarray, w: int) -> np.ndarray:
    """Mean over a w x w window (edge-padded), same shape as a."""
    lo, hi = w // 2, w - 1 - w // 2
    p = np.pad(a.astype(np.float64), ((lo, hi), (lo, hi)), mode="edge")
    c = np.pad(p.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    return (c[w:, w:] - c[:-w, w:] - c[w:, :-w] + c[:-w, :-w]) / (w * w)


def _texture_window(kind: str, h: int, w: int) -> int:
    p = texture_period(h, w)
    return p + 3 if kind == "stipple" else p


def _fit_texture(images: list[np.ndarray]) -> tuple[str, float]:
    """Regress each image's local brightness modulation on each kind's (known,
    periodic) pattern; the kinds sit at different frequencies, so they separate."""
    num = {k: 0.0 for k in TEXTURE_KINDS[1:]}
    den = {k: 0.0 for k in TEXTURE_KINDS[1:]}
    for img in images:
        h, w, _ = img.shape
        lum = img.mean(axis=2)
        ok = (img.max(axis=2) < 250) & (lum > 8)
        for kind in num:
            win = _texture_window(kind, h, w)
            r = lum / (box_mean(lum, win) + 1e-6) - 1.0
            f = 1.0 + texture_pattern(kind, h, w)
            q = f / box_mean(f, win) - 1.0
            num[kind] += float((r * q)[ok].sum())
            den[kind] += float((q * q)[ok].sum())
    strength = {k: num[k] / den[k] if den[k] > 0 else 0.0 for k in num}
    kind = max(strength, key=strength.get)
    if strength[kind] < 0.1:
        return "none", 0.0
    return kind, float(min(1.0, strength[kind]))


def _fit_grain(images: list[np.ndarray]) -> float:
    """Grain is independent per channel, so it survives in channel differences where
    texture and lighting (same factor on every channel) mostly cancel; a robust
    (median) spread of their Laplacian residual ignores edges."""
    res = []
    for img in images:
        ok = ((img.min(axis=2) > 5) & (img.max(axis=2) < 250))[1:-1, 1:-1]
        for a, b in ((0, 1), (1, 2)):
            d = img[:, :, a] - img[:, :, b]
            lap = d[1:-1, 1:-1] - 0.25 * (d[:-2, 1:-1] + d[2:, 1:-1] + d[1:-1, :-2] + d[1:-1, 2:])
            res.append(lap[ok])
    r = np.concatenate(res)
    mad = np.median(np.abs(r - np.median(r)))
    return float(1.4826 * mad / math.sqrt(2 * 1.25))


def _fit_lighting_rough(images: list[np.ndarray]) -> tuple[float, float]:
    """First guess of the log-brightness slope (bx, by) from small steps inside flat regions."""
    sx = sy = n = 0.0
    for img in images:
        h, w, _ = img.shape
        lb = np.log(box_mean(img.mean(axis=2), 5) + 1.0)
        s = max(2, min(h, w) // 32)
        r = max(h, w) / 2
        dx = lb[:, s:] - lb[:, :-s]
        dy = lb[s:, :] - lb[:-s, :]
        vx, vy = np.abs(dx) < 0.12, np.abs(dy) < 0.12
        sx += dx[vx].mean() / s * r if vx.any() else 0.0
        sy += -dy[vy].mean() / s * r if vy.any() else 0.0
        n += 1
    return sx / n, sy / n


def _fit_lighting_regions(images: list[np.ndarray], labels: list[np.ndarray]) -> tuple[float, float]:
    """Log-brightness slope from a plane fit inside flat regions, with one intercept
    per colour cluster (so the scene layout, e.g. bright sky over dark ground, does
    not read as light)."""
    a = np.zeros((2, 2))
    b = np.zeros(2)
    for img, lab in zip(images, labels):
        h, w, _ = img.shape
        xs, ys = light_coords(h, w)
        X, Y = np.broadcast_to(xs[None, :], (h, w)), np.broadcast_to(ys[:, None], (h, w))
        ll = np.log(img.mean(axis=2) + 1.0)
        inner = np.ones((h, w), bool)
        for dyx in ((0, 2), (0, -2), (2, 0), (-2, 0)):
            inner &= lab == np.roll(lab, dyx, axis=(0, 1))
        inner &= (img.max(axis=2) < 250) & (img.mean(axis=2) > 12)
        for k in np.unique(lab[inner]):
            m = inner & (lab == k)
            if m.sum() < 30:
                continue
            x, y, l = X[m] - X[m].mean(), Y[m] - Y[m].mean(), ll[m] - ll[m].mean()
            a += [[x @ x, x @ y], [x @ y, y @ y]]
            b += [x @ l, y @ l]
    if np.linalg.det(a) <= 1e-9:
        return 0.0, 0.0
    bx, by = np.linalg.solve(a, b)
    return float(bx), float(by)


def _delight(img: np.ndarray, bx: float, by: float) -> np.ndarray:
    h, w, _ = img.shape
    xs, ys = light_coords(h, w)
    return img / np.exp(bx * xs[None, :] + by * ys[:, None])[:, :, None]


def _flat_pixels(img: np.ndarray, grain: float) -> np.ndarray:
    """3x3-averaged colours of pixels whose neighbourhood is flat (variance no more
    than grain explains): region interiors only, no edge or outline mixtures."""
    mean = [box_mean(img[:, :, c], 3) for c in range(3)]
    var = sum(box_mean(img[:, :, c] ** 2, 3) - mean[c] ** 2 for c in range(3))
    flat = var < 6.0 * grain**2 + 60.0
    return np.stack(mean, -1)[flat]


def _peaks(x: np.ndarray, k: int, first: np.ndarray, min_dist: float = 30.0) -> np.ndarray:
    """Deterministic k-means seeds: the most populated colour bins, each at least
    min_dist from the ones already taken (so a small accent colour is not missed)."""
    q = (x // 12).astype(np.int64)
    # one integer per bin, in the same (lexicographic) order as the rows: np.unique on
    # it matches np.unique(q, axis=0) but is far faster than the row-wise version
    o = q - q.min(axis=0, initial=0)
    span = o.max(axis=0, initial=0) + 1
    key = (o[:, 0] * span[1] + o[:, 1]) * span[2] + o[:, 2]
    _, first_row, counts = np.unique(key, return_index=True, return_counts=True)
    bins = q[first_row]
    picked = [first]
    for b in bins[np.argsort(-counts, kind="stable")]:
        c = b * 12.0 + 6.0
        if min(np.linalg.norm(c - p) for p in picked) >= min_dist:
            picked.append(c)
            if len(picked) == k:
                break
    while len(picked) < k:  # fewer distinct colours than k: duplicate (stays empty)
        picked.append(picked[-1] + 1.0)
    return np.array(picked, float)


def _kmeans(x: np.ndarray, init: np.ndarray, iters: int = 20) -> np.ndarray:
    """Plain k-means; centre 0 stays pinned (the ink, whose colour is known). Stops
    once no assignment changes: the centres are then fixed, so more rounds are no-ops."""
    c = init.astype(np.float64).copy()
    lab = None
    for _ in range(iters):
        now = _assign(x, c)
        if lab is not None and np.array_equal(now, lab):
            break
        lab = now
        for k in range(1, len(c)):
            m = lab == k
            if m.any():
                c[k] = x[m].mean(axis=0)
    return c


def _assign(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Nearest centre per row. float32 is ample for 0..255 colours and twice as fast;
    |x|^2 is the same for every centre, so it is left out of the argmin."""
    c32 = c.astype(np.float32)
    d = (c32 * c32).sum(-1) - 2 * (x.astype(np.float32, copy=False) @ c32.T)
    return d.argmin(axis=1)


def _line_width(mask: np.ndarray) -> float:
    """Stroke width of a mask: per pixel, the shorter of its horizontal and vertical run."""

    def runs(m: np.ndarray) -> np.ndarray:  # run length along axis 1, per pixel
        # a False column on each side keeps runs within their row, so the whole
        # mask is one flat sequence; its set pixels are the runs, in order
        padded = np.pad(m, ((0, 0), (1, 1))).ravel().astype(np.int8)
        edges = np.flatnonzero(np.diff(padded))
        lengths = edges[1::2] - edges[::2]
        out = np.zeros(m.shape, np.int32)
        out[m] = np.repeat(lengths, lengths)
        return out

    if mask.sum() == 0:
        return 1.0
    rmin = np.minimum(runs(mask), runs(mask.T).T)[mask]
    return float(np.median(rmin))


def fit_style(images: list[np.ndarray]) -> StyleParams:
    """Estimate the style from images alone (the offline counterpart of learning a
    style token). Order matters: texture and lighting are divided out before the
    palette is clustered, and grain is read where neither remains."""
    if not images:
        raise ValueError("fit_style needs at least one image")
    imgs = [np.asarray(im, np.float64) for im in images]
    kind, strength = _fit_texture(imgs)
    if kind != "none":
        imgs = [im / (1.0 + strength * texture_pattern(kind, *im.shape[:2]))[:, :, None] for im in imgs]
    grain = _fit_grain(imgs)

    # palette: k-means on de-lit, lightly blurred pixels, with a pinned ink cluster
    bx, by = _fit_lighting_rough(imgs)
    ink = np.array(INK, float)
    for _ in range(2):
        delit = [_delight(im, bx, by) for im in imgs]
        sample = np.concatenate([_flat_pixels(d, grain) for d in delit])
        # a 6-colour palette needs no more than ~10k pixels (a fixed stride: deterministic)
        sample = sample[:: max(1, -(-len(sample) // KMEANS_SAMPLE))]
        centres = _kmeans(sample, _peaks(sample, 6, ink))
        labels = [_assign(d.reshape(-1, 3), centres).reshape(d.shape[:2]) for d in delit]
        bx, by = _fit_lighting_regions(imgs, labels)
    colours = centres[1:]

    # contrast from the spread of the colours' brightness, saturation from their chroma
    lums = colours.mean(axis=1)
    contrast = float(np.clip(lums.std() / ROLE_LUM_STD, 0.5, 1.6))
    chroma = (colours.max(axis=1) - colours.min(axis=1)).mean()
    saturation = float(np.clip(chroma / (contrast * PALETTE_CHROMA), 0.3, 1.6))
    lum0 = 128.0 + (lums - 128.0) / contrast
    pal = lum0[:, None] + (colours - lums[:, None]) / (saturation * contrast)
    palette: list[RGB] = [(0, 0, 0)] * 5
    for rank, k in enumerate(np.argsort(lum0)[::-1]):
        palette[ROLES_BY_LUM[rank]] = tuple(int(v) for v in np.clip(np.round(pal[k]), 0, 255))

    widths = [_line_width(lab == 0) * 256 / min(lab.shape) for lab in labels]
    lighting = math.hypot(bx, by) / LIGHT_GAIN
    return StyleParams(
        palette=tuple(palette),
        line_weight=int(np.clip(round(float(np.median(widths))), 1, 8)),
        texture=round(strength, 3),
        texture_kind=kind,
        lighting=round(float(min(1.0, lighting)), 3),
        light_angle=round(math.degrees(math.atan2(by, bx)) % 360.0, 1),
        grain=round(grain, 2),
        saturation=round(saturation, 3),
        contrast=round(contrast, 3),
    )


class OfflineStyleLearner:
    """Stage 2 offline: description -> spec -> reference images -> fitted style."""

    name = "offline"

    def identity(self) -> str:
        """Goes into cache keys: bump when spec, references or fitting change."""
        return "offline-style/1"

    def learn(self, movie: Movie, references: int, size: int, seed: int) -> tuple[list[np.ndarray], StyleParams]:
        """Returns the reference images and the FITTED params (what the renderer uses)."""
        spec = style_spec(movie.style_description, movie.style_keyword, seed)
        refs = render_references(spec, references, size, seed)
        return refs, fit_style(refs)
