"""An MLP that is an ensemble of k (`ensemble: k` in the MLP family): TabM-mini (Gorishniy et al. 2024,
"TabM: Advancing Tabular Deep Learning With Parameter-Efficient Ensembling").

Every member shares the MLP's hidden layers; each multiplies the input of the first hidden layer by
its own fixed-at-start random signs (then learned scales) and has its own output layer. In training
the model returns every member's output, (batch, k, outputs), and the loss is the mean of the
members' losses (fit's loss flattens the member axis), so each member learns as an MLP of its own; in
evaluation it returns the mean of the members' outputs (logits for classes), one model with one
output for everything downstream: metrics, export, ONNX, predict. The members cost k times the hidden
layers' compute; the parameters grow by k input scales and k output layers only.
"""

from __future__ import annotations

import torch
from torch import nn


class EnsembleMLP(nn.Module):
    def __init__(self, first: nn.Module, in_features: int, body: list[nn.Module], last: int, out_dim: int, k: int):
        super().__init__()
        self.first = first  # Flatten, or a table's NumericInput
        self.k = k
        # Random signs make the members differ from the first step (TabM-mini's initialisation).
        self.scale = nn.Parameter(torch.randint(0, 2, (k, in_features)).float() * 2 - 1)
        self.body = nn.Sequential(*body)
        bound = last**-0.5  # nn.Linear's default initialisation, one output layer per member
        self.head_weight = nn.Parameter(torch.empty(k, last, out_dim).uniform_(-bound, bound))
        self.head_bias = nn.Parameter(torch.empty(k, out_dim).uniform_(-bound, bound))

    def init_from_data(self, inputs: torch.Tensor) -> None:
        if hasattr(self.first, "init_from_data"):
            self.first.init_from_data(inputs)

    def zero_head(self) -> None:
        with torch.no_grad():
            self.head_weight.zero_()
            self.head_bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.first(x)
        h = (h.unsqueeze(1) * self.scale).flatten(0, 1)  # (batch * k, features): member-major per row
        h = self.body(h)
        h = h.view(-1, self.k, h.shape[-1])
        out = torch.einsum("bkh,kho->bko", h, self.head_weight) + self.head_bias
        return out if self.training else out.mean(1)
