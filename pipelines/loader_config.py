"""`LoaderConfig`: the loader's typed settings, the `data` section of a run config (pydantic checks them).

Field names are the code's words; where the YAML keeps the original ActionCLIP key, that key is the
field's alias (`num_segments` is the clip's frame count `num_frames`, `input_size` the crop size
`image_size`). Either spelling validates; configs are written with the aliases.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationInfo, field_validator

from pipelines.config import COLOR_JITTER, MULTISCALE_SCALES

BACKENDS = ("auto", "dali", "baseline")
DECODE_DEVICES = ("auto", "gpu", "cpu")
Probability = Annotated[float, Field(ge=0, le=1)]


class Section(BaseModel):
    """A config section: unknown keys are errors, values are checked on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_by_name=True,
                              validate_by_alias=True, serialize_by_alias=True)


class RandAugmentConfig(Section):
    """RandAugment in training: `N` ops of magnitude `M` (of 31 bins); N = 0 turns it off."""

    N: int = Field(0, ge=0)
    M: int = Field(9, ge=0, le=30)


class LoaderConfig(Section):
    num_frames: int = Field(8, ge=1, alias="num_segments")  # the clip's frame count T
    image_size: int = Field(224, ge=1, alias="input_size")  # the square crop the model takes
    batch_size: int = Field(32, ge=1)  # videos per rank and step (DeepSpeed micro batch)
    backend: Literal[BACKENDS] = "dali"
    workers: int = Field(4, ge=0)  # DALI threads and source workers (baseline: DataLoader workers, 0 = in-process)
    prefetch: int = Field(2, ge=1)  # batches decoded ahead of the step
    decode_device: Literal[DECODE_DEVICES] = "auto"
    sparse_decode: StrictBool = True  # decode only the GOPs that hold the sampled frames
    flip: StrictBool = True  # False for direction-sensitive classes ("swiping left" vs "right")
    scales: list[float] = Field(default_factory=lambda: list(MULTISCALE_SCALES), min_length=1)
    color_jitter: tuple[float, float, float, float] = COLOR_JITTER  # brightness, contrast, saturation, hue
    color_jitter_prob: Probability = 0.8
    grayscale_prob: Probability = 0.2
    randaug: RandAugmentConfig = Field(default_factory=RandAugmentConfig)
    frame_interval: Optional[int] = Field(None, ge=1)  # dense sampling stride; None: TSN segments
    shuffle_buffer: int = Field(1024, ge=1)  # baseline loader's shuffle buffer (DALI draws a permutation)

    @field_validator("workers")
    @classmethod
    def _dali_needs_threads(cls, workers: int, info: ValidationInfo) -> int:
        if workers < 1 and info.data.get("backend") != "baseline":
            raise ValueError("must be >= 1 for the DALI loader (0 loads in-process, with backend baseline only)")
        return workers

    @property
    def rand_augment(self) -> tuple[int, int] | None:
        return (self.randaug.N, self.randaug.M) if self.randaug.N else None
