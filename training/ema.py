"""Exponential moving average of the weights (`solver.ema`: the decay; 0 off).

After every optimiser step the engine applies, EMA <- decay · EMA + (1 - decay) · W, over every floating
entry of the state dict (parameters and BatchNorm statistics; integer buffers are copied), with torch's
own EMA update (`torch.optim.swa_utils.get_ema_multi_avg_fn`). It starts from the weights the engine starts
from. W is the engine's full-precision weights: ZeRO's fp32 master copy of each parameter, gathered per
parameter on every rank (`checkpoint.fp32_weights`, as last.pt / best.pt are built), so the EMA does not
carry bf16 rounding and works the same for every ZeRO stage.

Every rank holds the whole EMA in fp32 as a copy of the model (evaluated as it is, `val_ema` rows) rather
than only its own partition: partitioning it would save (world - 1) / world of one fp32 model per rank but
needs DeepSpeed's private fragment layout to update and to assemble it, while the gathered update costs one
all-reduce of the fp32 weights per step, about what the gradients cost. The EMA goes into the DeepSpeed
checkpoint's client state (`--resume` restores it) and into its own consolidated files, `best_ema.pt` /
`last_ema.pt`, in the format of best.pt.
"""
from __future__ import annotations

import copy

import torch
from torch.optim.swa_utils import get_ema_multi_avg_fn

from training import checkpoint


class WeightEma:
    """The EMA of a model's weights, as a model on `device` in fp32 and eval mode (`model`): a copy of `model`,
    made before an engine takes it over (`start_from` then sets the engine's weights)."""

    def __init__(self, model: torch.nn.Module, decay: float, device: torch.device) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).to(device).float().eval().requires_grad_(False)
        self.updates = 0
        self._update = get_ema_multi_avg_fn(decay)
        self._entries = self.model.state_dict()  # tensors shared with the model: updating them updates it
        self._floating = [name for name, value in self._entries.items() if value.is_floating_point()]

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        """One EMA step towards the engine module's full-precision weights; every rank calls it (a collective
        under ZeRO)."""
        current = checkpoint.fp32_weights(module)
        device = next(iter(self._entries.values())).device
        self._update([self._entries[name] for name in self._floating],
                     [current[name].to(device) for name in self._floating], self.updates)
        for name, value in self._entries.items():
            if not value.is_floating_point():
                value.copy_(current[name])
        self.updates += 1

    @torch.no_grad()
    def start_from(self, module: torch.nn.Module) -> None:
        """Start the average at the engine module's current weights: those the engine starts with (in bf16 its
        fp32 master copy is made from the bf16 cast), or a resumed run's when its checkpoint has no EMA. Every
        rank calls it."""
        for name, value in checkpoint.fp32_weights(module).items():
            self._entries[name].copy_(value)
        self.updates = 0

    def state_dict(self) -> dict:
        """{"weights": fp32 state dict on the CPU, "updates": steps averaged}: for the DeepSpeed client state
        (tensors and numbers only, so it loads with weights_only=True) and, its weights, for best_ema.pt."""
        return {"weights": {name: value.detach().cpu().clone() for name, value in self._entries.items()},
                "updates": self.updates}

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        for name, value in self._entries.items():
            value.copy_(state["weights"][name])
        self.updates = int(state["updates"])
