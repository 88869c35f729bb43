"""What a clip looks like after loading: one description shared by the DALI and the baseline loader."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODES = ("train", "val", "test")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MULTISCALE_SCALES = (1.0, 0.875, 0.75, 0.66)
# ColorJitter strengths (brightness, contrast, saturation, hue) as in ActionCLIP's training recipe.
COLOR_JITTER = (0.4, 0.4, 0.2, 0.1)


@dataclass(frozen=True)
class ClipConfig:
    """Sampling, augmentation and normalisation of one clip.

    `frame_interval=None` selects TSN segment sampling, an int selects dense sampling at that stride.
    `hflip` must be False for direction-sensitive classes ("swiping left" vs "swiping right").
    `rand_augment=(n, m)` adds RandAugment with n ops of magnitude m (of 31 bins) in training.
    Val is one centre view; test gives `num_clips` temporal x `num_crops` (1 or 3) spatial views.
    """

    mode: str
    num_frames: int = 8
    frame_interval: int | None = None
    image_size: int = 224
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    hflip: bool = True
    scales: tuple[float, ...] = MULTISCALE_SCALES
    color_jitter: tuple[float, float, float, float] = COLOR_JITTER
    color_jitter_prob: float = 0.8
    grayscale_prob: float = 0.2
    rand_augment: tuple[int, int] | None = None
    num_clips: int = 1
    num_crops: int = 1

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.num_frames < 1 or self.image_size < 1:
            raise ValueError(f"num_frames and image_size must be positive, got {self.num_frames}, {self.image_size}")
        if self.frame_interval is not None and self.frame_interval < 1:
            raise ValueError(f"frame_interval must be None (segment sampling) or >= 1, got {self.frame_interval}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean and std need 3 channels and std > 0, got {self.mean}, {self.std}")
        if self.num_crops not in (1, 3) or self.num_clips < 1:
            raise ValueError(f"num_crops must be 1 or 3 and num_clips >= 1, got {self.num_crops}, {self.num_clips}")
        if self.mode != "test" and self.views != 1:
            raise ValueError(f"{self.mode} mode reads one view per video; multi-view "
                             f"({self.num_clips} clips x {self.num_crops} crops) is test mode")
        if self.rand_augment is not None and not 0 <= self.rand_augment[1] <= 30:
            raise ValueError(f"RandAugment magnitude must be in [0, 30], got {self.rand_augment[1]}")

    @property
    def train(self) -> bool:
        return self.mode == "train"

    @property
    def views(self) -> int:
        """Views per video: clips x crops (1 outside test mode)."""
        return self.num_clips * self.num_crops

    @property
    def eval_short_side(self) -> int:
        """Short side before the centre/three crops: 256 for 224 crops, scaled for other sizes."""
        return round(self.image_size * 256 / 224)

    def crop_positions(self) -> tuple[float, ...]:
        """Crop anchors along the long side, as fractions of the free room (0 = start, 1 = end)."""
        return (0.5,) if self.num_crops == 1 else (0.0, 0.5, 1.0)

    def multiscale_pairs(self) -> np.ndarray:
        """(height, width) fractions of the short side a training crop may take.

        Every pair of scales at most one step apart in `scales`, so crops stay near square.
        """
        return np.array([(h, w) for i, h in enumerate(self.scales) for j, w in enumerate(self.scales)
                         if abs(i - j) <= 1], dtype=np.float32)


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """Seed for one (run seed, epoch, rank): same inputs give the same clips, epochs differ."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0] & 0x7FFFFFFF)
