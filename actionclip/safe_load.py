"""Reading a weights file without running code from it: torch.load(weights_only=True) and a clear error."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def load_weights_only(path: str | Path, advice: str) -> Any:
    """torch.load(weights_only=True): tensors and plain containers only, never pickled code; the error says `advice`."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(
            f"{path}: not a weights-only checkpoint: torch.load(weights_only=True) accepts only tensors and plain "
            f"containers; {advice}. torch said: {type(error).__name__}: {error}") from error
