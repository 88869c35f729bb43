"""Class vocabulary and per-video scene sampling for the synthetic action dataset.

Every motion is defined as a trajectory over normalised time t in [0, 1]. Opposite classes
(left/right, up/down, clockwise/counter-clockwise, growing/shrinking) share one sampler and differ
only by running time backwards, so their per-frame position, size and angle distributions are
identical and only the temporal order of frames tells them apart.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from shard_tools.synth_render import SHAPES

MOTIONS = (
    "moving left",
    "moving right",
    "moving up",
    "moving down",
    "rotating clockwise",
    "rotating counter-clockwise",
    "growing",
    "shrinking",
    "bouncing",
    "blinking",
)
# Motions drawn by running the named partner's trajectory backwards in time.
TIME_REVERSED = {
    "moving left": "moving right",
    "moving up": "moving down",
    "rotating counter-clockwise": "rotating clockwise",
    "shrinking": "growing",
}
# Saturated fills (max - min channel >= 130) so the object stands out from the grey-ish backgrounds.
COLOURS = {
    "red": (215, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 90, 225),
    "yellow": (235, 200, 30),
    "orange": (240, 125, 20),
    "purple": (140, 60, 200),
    "cyan": (25, 180, 200),
    "magenta": (210, 50, 165),
}
COMPOSITIONAL_COLOURS = ("red", "green", "blue", "yellow")
COMPOSITIONAL_SHAPES = ("square", "circle", "triangle")
FRAME_RATES = (12, 15, 20, 24, 25, 30)
PIVOT_OFFSET = 0.5  # rotation pivot distance from the object's centre, in object radii
COLOUR_JITTER = 12


@dataclass(frozen=True)
class ClassSpec:
    """One class: its name and what it fixes (colour and shape only in compositional mode)."""

    name: str
    motion: str
    colour: str | None = None
    shape: str | None = None


@dataclass(frozen=True)
class Scene:
    """Everything needed to draw one clip; per-frame arrays have one entry per frame, in pixels."""

    height: int
    width: int
    fps: int
    shape: str
    fill: tuple[int, int, int]
    centre_x: np.ndarray
    centre_y: np.ndarray
    diameter: np.ndarray
    angle: np.ndarray  # radians, positive = clockwise on screen (image y axis points down)
    visible: np.ndarray  # 1.0 drawn, 0.0 hidden

    @property
    def video_frames(self) -> int:
        return len(self.centre_x)


def motion_classes() -> list[ClassSpec]:
    """The motion-mode classes (any colour and shape), sorted by name."""
    return sorted((ClassSpec(name=m, motion=m) for m in MOTIONS), key=lambda spec: spec.name)


def compositional_classes() -> tuple[list[ClassSpec], list[ClassSpec]]:
    """(seen, held-out) colour x shape x motion classes, each sorted by name.

    A combination (colour i, shape j, motion k) is held out when (i + j + k) is a multiple of the
    number of colours: a quarter of the combinations, and every colour-shape, colour-motion and
    shape-motion pair still occurs among the seen classes, so held-out names only recombine seen parts.
    """
    seen, held_out = [], []
    combos = itertools.product(enumerate(COMPOSITIONAL_COLOURS), enumerate(COMPOSITIONAL_SHAPES), enumerate(MOTIONS))
    for (ci, colour), (si, shape), (mi, motion) in combos:
        spec = ClassSpec(name=f"{colour} {shape} {motion}", motion=motion, colour=colour, shape=shape)
        (held_out if (ci + si + mi) % len(COMPOSITIONAL_COLOURS) == 0 else seen).append(spec)
    return sorted(seen, key=lambda s: s.name), sorted(held_out, key=lambda s: s.name)


def sample_scene(
    rng: np.random.Generator, spec: ClassSpec, size: tuple[int, int], frames: tuple[int, int]
) -> Scene:
    """Draw frame size, rate, length, object and trajectory for one clip of class `spec`."""
    # Even sizes only: yuv420p stores chroma at half resolution.
    short = 2 * int(rng.integers((size[0] + 1) // 2, size[1] // 2 + 1))
    long = max(short, int(short * rng.uniform(1.0, 4 / 3)) // 2 * 2)
    height, width = (short, long) if rng.random() < 0.75 else (long, short)
    video_frames = int(rng.integers(frames[0], frames[1] + 1))
    fps = int(rng.choice(FRAME_RATES))
    shape = spec.shape or str(rng.choice(list(SHAPES)))
    colour = COLOURS[spec.colour or str(rng.choice(list(COLOURS)))]
    fill = tuple(int(c) for c in np.clip(np.array(colour) + rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, 3), 0, 255))

    t = np.linspace(0.0, 1.0, video_frames)
    if spec.motion in TIME_REVERSED:
        t = t[::-1]
    x, y, diameter, angle, visible = _TRAJECTORIES[TIME_REVERSED.get(spec.motion, spec.motion)](rng, t)
    # Trajectories live in the central short x short square, which a centre crop keeps whole.
    return Scene(
        height=height,
        width=width,
        fps=fps,
        shape=shape,
        fill=fill,
        centre_x=(width - short) / 2 + x * short,
        centre_y=(height - short) / 2 + y * short,
        diameter=diameter * short,
        angle=angle,
        visible=visible,
    )


Trajectory = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _steady(rng: np.random.Generator, t: np.ndarray, diameter: float) -> Trajectory:
    """A still, visible object of the given diameter at a random place and orientation."""
    x, y = rng.uniform(diameter / 2, 1 - diameter / 2, 2)
    ones = np.ones_like(t)
    return x * ones, y * ones, diameter * ones, rng.uniform(0, 2 * np.pi) * ones, ones


def _object_diameter(rng: np.random.Generator) -> float:
    return float(rng.uniform(0.36, 0.5))


def _travel(rng: np.random.Generator, t: np.ndarray, diameter: float) -> np.ndarray:
    """Coordinate along the travel axis, increasing over 80-100% of the free span."""
    free = 1 - diameter
    length = rng.uniform(0.8, 1.0) * free
    start = rng.uniform(diameter / 2, diameter / 2 + free - length)
    return start + length * t


def _moving_right(rng: np.random.Generator, t: np.ndarray) -> Trajectory:
    diameter = _object_diameter(rng)
    _, y, d, angle, visible = _steady(rng, t, diameter)
    return _travel(rng, t, diameter), y, d, angle, visible


def _moving_down(rng: np.random.Generator, t: np.ndarray) -> Trajectory:
    diameter = _object_diameter(rng)
    x, _, d, angle, visible = _steady(rng, t, diameter)
    return x, _travel(rng, t, diameter), d, angle, visible


def _rotating_clockwise(rng: np.random.Generator, t: np.ndarray) -> Trajectory:
    """Turn about a pivot half a radius below the object's centre, like a clock hand.

    At 64 px a turn about the centre changes few pixels; the swing along an arc makes the
    direction plain. 150-300 degrees per clip: under 45 degrees between 8 evenly spaced frames,
    so the direction is never ambiguous.
    """
    diameter = _object_diameter(rng)
    arm = PIVOT_OFFSET * diameter / 2
    pivot_x, pivot_y, _, start, visible = _steady(rng, t, diameter + 2 * arm)
    angle = start + np.deg2rad(rng.uniform(150, 300)) * t
    # The object's "up" axis (0, -1) turned clockwise by `angle` is (sin, -cos).
    x, y = pivot_x + arm * np.sin(angle), pivot_y - arm * np.cos(angle)
    return x, y, diameter * np.ones_like(t), angle, visible


def _growing(rng: np.random.Generator, t: np.ndarray) -> Trajectory:
    small, large = rng.uniform(0.2, 0.26), rng.uniform(0.46, 0.56)
    x, y, _, angle, visible = _steady(rng, t, large)
    return x, y, small + (large - small) * t, angle, visible


def _bouncing(rng: np.random.Generator, t: np.ndarray) -> Trajectory:
    diameter = _object_diameter(rng)
    x, _, d, angle, visible = _steady(rng, t, diameter)
    height = rng.uniform(0.7, 1.0) * (1 - diameter)
    floor = rng.uniform(diameter / 2 + height, 1 - diameter / 2)
    bounces, phase = rng.uniform(1.5, 2.5), rng.uniform(0, 1)
    return x, floor - height * np.abs(np.sin(np.pi * (bounces * t + phase))), d, angle, visible


def _blinking(rng: np.random.Generator, t: np.ndarray) -> Trajectory:
    x, y, d, angle, _ = _steady(rng, t, _object_diameter(rng))
    cycles, phase = rng.uniform(1.5, 3.0), rng.uniform(0, 1)
    return x, y, d, angle, (np.mod(cycles * t + phase, 1.0) < 0.5).astype(np.float64)


_TRAJECTORIES = {
    "moving right": _moving_right,
    "moving down": _moving_down,
    "rotating clockwise": _rotating_clockwise,
    "growing": _growing,
    "bouncing": _bouncing,
    "blinking": _blinking,
}
