"""A movie's look in the offline renderer's terms: palette, lines, texture, light, grain.

The style room learns it (from the style description, fitted back from reference
images); the renderer paints with it; styles of every learner are also described in
these terms so they can be compared in one table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

RGB = tuple[int, int, int]


TEXTURE_KINDS: tuple[str, ...] = ("none", "hatch", "canvas", "stipple")


@dataclass(frozen=True)
class StyleParams:
    """The "learned style": everything the renderer needs to give a movie its look."""

    palette: tuple[RGB, ...]  # 5 colours: light, far, mid, ground, accent
    line_weight: int  # outline width in px at 256 px (the renderer scales it)
    texture: float  # 0..1 strength of the surface texture
    texture_kind: str  # one of TEXTURE_KINDS
    lighting: float  # 0..1 strength of a directional light gradient
    light_angle: float  # degrees; brightest side, counter-clockwise from image right
    grain: float  # std of per-channel film grain on the 0..255 scale
    saturation: float  # ~0.4..1.4 multiplier
    contrast: float  # ~0.7..1.3 multiplier

    def to_dict(self) -> dict:
        d = asdict(self)
        d["palette"] = [list(c) for c in self.palette]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> StyleParams:
        return cls(
            palette=tuple(tuple(int(v) for v in c) for c in d["palette"]),
            line_weight=int(d["line_weight"]),
            texture=float(d["texture"]),
            texture_kind=str(d["texture_kind"]),
            lighting=float(d["lighting"]),
            light_angle=float(d["light_angle"]),
            grain=float(d["grain"]),
            saturation=float(d["saturation"]),
            contrast=float(d["contrast"]),
        )
