"""Gradient checkpointing for open_clip's ModifiedResNet image towers (open_clip has it for ViTs only).

With it on, each bottleneck's activations are recomputed in backward instead of kept. The recomputation
runs the BatchNorms in training mode a second time; their running statistics must not move twice, so
the recompute runs with every BatchNorm's momentum at 0 (running = running). The forward is swapped on
the instance, so the state dict and the checkpoint layouts stay those of open_clip.
"""
from __future__ import annotations

import contextlib
import types

import torch
from open_clip.modified_resnet import ModifiedResNet
from torch import nn
from torch.utils.checkpoint import checkpoint


@contextlib.contextmanager
def _frozen_running_stats(module: nn.Module):
    norms = [norm for norm in module.modules() if isinstance(norm, nn.modules.batchnorm._BatchNorm)]
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.momentum = 0.0
    try:
        yield
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum


def _checkpointed_forward(self: ModifiedResNet, x: torch.Tensor) -> torch.Tensor:
    x = self.stem(x)
    for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
        for block in layer:
            if torch.is_grad_enabled() and self.training:
                x = checkpoint(block, x, use_reentrant=False,
                               context_fn=lambda block=block: (contextlib.nullcontext(), _frozen_running_stats(block)))
            else:
                x = block(x)
    return self.attnpool(x)


def set_resnet_grad_checkpointing(visual: ModifiedResNet, enable: bool) -> None:
    """Recompute every bottleneck of `visual` in backward (enable) or keep its activations (the default)."""
    if enable:
        visual.forward = types.MethodType(_checkpointed_forward, visual)
    else:
        visual.__dict__.pop("forward", None)
