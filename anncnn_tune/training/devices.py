"""Turn --device into a torch.device, refusing what this machine does not have."""

from __future__ import annotations

import re

import torch

from anncnn_tune.errors import UserError

PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve(name: str, flag: str = "--device") -> torch.device:
    """flag: the option the name came from (--device or --devices), for the message."""
    if not PATTERN.match(name or ""):
        raise UserError(f"unknown {flag} {name!r}; use auto, cpu, cuda or cuda:N")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"{flag} {name}: CUDA is not available on this machine; use --device cpu or auto")
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise UserError(f"{flag} {name}: only {torch.cuda.device_count()} CUDA device(s); "
                            f"use cuda:0..cuda:{torch.cuda.device_count() - 1}")
    return device
