"""Numeric features the way tabular deep learning treats them: a transform fitted on the training
rows, then an optional learned embedding per feature, before the MLP.

Transforms (`numeric_transform`): `standard` is the table pipeline's own scaling (data/table.py
already standardises numeric columns on the training rows), so it adds nothing; `quantile` maps
each column through its training quantiles to a standard normal (scikit-learn's
QuantileTransformer(output_distribution="normal"), as the rtdl/TabM papers prepare inputs);
`robust` centres on the training median, divides by the interquartile range and clips outliers.

Embeddings (`numeric_embedding`), after Gorishniy et al., "On Embeddings for Numerical Features in
Tabular Deep Learning" (NeurIPS 2022) and yandex-research/rtdl-num-embeddings: `plr` is periodic
(x -> [cos 2 pi c x, sin 2 pi c x] with trainable frequencies c ~ N(0, sigma)), then a linear layer
per feature and ReLU; `piecewise_linear` encodes x by the bins between training quantiles (1 for
bins wholly below x, the fraction of the bin x covers, 0 above), then a linear layer per feature
and ReLU. Each numeric feature becomes `embedding_dim` numbers; the other columns (0/1 flags,
one-hot indicators) pass through untouched and are concatenated after them.

Everything a transform or the bins learn from the data is a buffer, filled by `init_from_data`
from training rows (fit() calls it before the first step, with the first 8192 rows of the training
split, which a table's seeded split has shuffled: a random sample, as scikit-learn's QuantileTransformer
fits on a subsample of 10,000) and saved in the state dict, so a saved model predicts without the
training data. Every operation is an elementwise op, a comparison-free
min/max or a sum (no searchsorted/bucketize), so the modules export to ONNX as they run in PyTorch.
"""

from __future__ import annotations

import math

import torch
from torch import nn

TRANSFORMS = ("standard", "quantile", "robust")
EMBEDDINGS = ("none", "plr", "piecewise_linear")

QUANTILE_KNOTS = 256  # quantile levels per column (scikit-learn's default is 1000 on up to 10,000 rows)
QUANTILE_TAIL = 1e-7  # the outermost levels map to +-5.2 standard deviations, as scikit-learn clips them
ROBUST_CLIP = 5.0  # robust-scaled values beyond +-5 interquartile ranges are clipped
PLR_FREQUENCIES = 48  # rtdl_num_embeddings' default n_frequencies
TINY = 1e-12  # a knot or bin narrower than this is a jump (a discrete column's repeated quantile)
# A bin is at least this share of its column's training range wide: a narrower one (a discrete column's
# repeated value) would make the output jump at that very value, so that the last bit of an input
# (float32 scaling in the ONNX graph against float64 in predict) could move a prediction.
MIN_BIN_SHARE = 1e-3


def _quantiles(x: torch.Tensor, levels: torch.Tensor, interpolation: str = "linear") -> torch.Tensor:
    """(len(levels), features) quantiles of x's columns (numpy's default interpolation, or another)."""
    return torch.quantile(x.double(), levels.double(), dim=0, interpolation=interpolation).to(x.dtype)


class QuantileNormal(nn.Module):
    """Each column through its training CDF to a standard normal, as a piecewise-linear map between
    knots (the training quantiles at QUANTILE_KNOTS levels) and the normal's quantiles at the same
    levels. Written as a sum of clipped ramps, y = z_0 + sum_k slope_k * min(relu(x - q_k), q_k+1 - q_k),
    which is monotone, continuous, constant outside the training range and exact at every knot."""

    def __init__(self, features: int, knots: int = QUANTILE_KNOTS):
        super().__init__()
        levels = torch.linspace(QUANTILE_TAIL, 1 - QUANTILE_TAIL, knots, dtype=torch.float64)
        normal = math.sqrt(2) * torch.erfinv(2 * levels - 1)
        self.register_buffer("levels", levels.float())
        self.register_buffer("start", normal[:1].float().expand(features).clone())
        # Until fitted: the identity between -5.2 and +5.2 (knots at the normal's own quantiles).
        knots_x = normal.float().unsqueeze(1).expand(knots, features).clone()
        self.register_buffer("knots", knots_x[:-1].T.contiguous())  # (features, knots - 1) ramp starts
        self.register_buffer("widths", (knots_x[1:] - knots_x[:-1]).T.contiguous())
        self.register_buffer("slopes", torch.ones(features, knots - 1))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        # Knots at training values ("lower"): a discrete column's knots are its values, equal or a real gap
        # apart, never a sliver between two values whose steep ramp the last bit of an input could climb.
        q = _quantiles(x, self.levels.to(x.device), "lower").T  # (features, knots)
        levels = self.levels.to(q.device).double()
        widths = q[:, 1:] - q[:, :-1]
        flat = widths <= TINY  # a repeated quantile (a discrete column's value): no ramp there
        # Each knot's target: the normal's quantile at the middle level of its run of equal knots (as
        # scikit-learn averages the lowest and highest level of a repeated value), so a discrete
        # column's most common value lands near the middle, not at -5.2.
        k = torch.arange(q.shape[1], device=q.device).expand_as(q)
        yes = torch.ones_like(flat[:, :1])
        first = torch.where(torch.cat([yes, ~flat], 1), k, torch.zeros_like(k)).cummax(1).values
        ends = torch.where(torch.cat([~flat, yes], 1), k, torch.full_like(k, q.shape[1] - 1))
        last = ends.flip(1).cummin(1).values.flip(1)
        target = (math.sqrt(2) * torch.erfinv((levels[first] + levels[last]) - 1)).to(q)
        self.knots.copy_(q[:, :-1])
        self.widths.copy_(torch.where(flat, torch.zeros_like(widths), widths))
        rise = target[:, 1:] - target[:, :-1]
        self.slopes.copy_(torch.where(flat, torch.zeros_like(widths), rise / widths.clamp_min(TINY)))
        self.start.copy_(target[:, 0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ramps = torch.minimum(torch.relu(x.unsqueeze(-1) - self.knots), self.widths)
        return self.start + (ramps * self.slopes).sum(-1)


class RobustScale(nn.Module):
    """(x - median) / IQR on the training rows, clipped to +-ROBUST_CLIP (a column with no spread
    between its quartiles keeps unit scale)."""

    def __init__(self, features: int):
        super().__init__()
        self.register_buffer("center", torch.zeros(features))
        self.register_buffer("scale", torch.ones(features))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        q = _quantiles(x, torch.tensor([0.25, 0.5, 0.75], device=x.device))
        iqr = q[2] - q[0]
        self.center.copy_(q[1])
        self.scale.copy_(torch.where(iqr > TINY, iqr, torch.ones_like(iqr)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.center) / self.scale).clamp(-ROBUST_CLIP, ROBUST_CLIP)


class PerFeatureLinear(nn.Module):
    """A separate linear layer for each feature: (B, features, d_in) -> (B, features, d_out)."""

    def __init__(self, features: int, d_in: int, d_out: int):
        super().__init__()
        bound = d_in**-0.5
        self.weight = nn.Parameter(torch.empty(features, d_in, d_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(features, d_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # One batched matmul over the features (as rtdl's _NLinear): (features, B, d_in) @ (features, d_in, d_out)
        return (x.transpose(0, 1) @ self.weight).transpose(0, 1) + self.bias


class PeriodicEmbedding(nn.Module):
    """PLR: periodic features with trainable frequencies (truncated N(0, sigma) at init), then a
    linear layer per feature and ReLU (rtdl_num_embeddings' PeriodicEmbeddings, lite=False)."""

    def __init__(self, features: int, dim: int, sigma: float, frequencies: int = PLR_FREQUENCIES):
        super().__init__()
        self.frequencies = nn.Parameter(torch.empty(features, frequencies))
        nn.init.trunc_normal_(self.frequencies, 0.0, sigma, -3 * sigma, 3 * sigma)
        self.linear = PerFeatureLinear(features, 2 * frequencies, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angles = 2 * math.pi * self.frequencies * x.unsqueeze(-1)
        return torch.relu(self.linear(torch.cat([torch.cos(angles), torch.sin(angles)], -1)))


class PiecewiseLinearEmbedding(nn.Module):
    """Piecewise-linear encoding over bins between training quantiles (the first bin extends below
    the training range, the last above it), then a linear layer per feature and ReLU."""

    def __init__(self, features: int, dim: int, bins: int):
        super().__init__()
        edges = torch.linspace(-2.0, 2.0, bins + 1)  # until fitted: even bins over +-2
        self.register_buffer("lefts", edges[:-1].expand(features, bins).clone())
        self.register_buffer("widths", (edges[1:] - edges[:-1]).expand(features, bins).clone())
        low = torch.zeros(bins)
        high = torch.ones(bins)
        low[0], high[-1] = -math.inf, math.inf
        self.register_buffer("low", low)
        self.register_buffer("high", high)
        self.linear = PerFeatureLinear(features, bins, dim)

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        bins = self.lefts.shape[1]
        edges = _quantiles(x, torch.linspace(0, 1, bins + 1, device=x.device)).T  # (features, bins + 1)
        self.lefts.copy_(edges[:, :-1])
        spread = (edges[:, -1:] - edges[:, :1]).clamp_min(TINY)
        self.widths.copy_(torch.maximum(edges[:, 1:] - edges[:, :-1], MIN_BIN_SHARE * spread))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        ratio = (x.unsqueeze(-1) - self.lefts) / self.widths
        return torch.minimum(torch.maximum(ratio, self.low), self.high)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.linear(self.encode(x)))


class NumericInput(nn.Module):
    """The MLP's input layer for tables: flatten, then the numeric columns (`numeric`: their
    positions; None: every column) through the transform and the embedding, the rest untouched.
    Output: the numeric part (flattened embeddings, or transformed values), then the other columns."""

    def __init__(self, features: int, numeric: tuple[int, ...] | None, transform: str, embedding: str,
                 dim: int = 24, sigma: float = 0.01, bins: int = 48):
        super().__init__()
        numeric = tuple(range(features)) if numeric is None else tuple(int(i) for i in numeric)
        others = tuple(i for i in range(features) if i not in set(numeric))
        self.register_buffer("numeric", torch.tensor(numeric, dtype=torch.long), persistent=False)
        self.register_buffer("others", torch.tensor(others, dtype=torch.long), persistent=False)
        self.n_numeric, self.n_others = len(numeric), len(others)
        n = len(numeric)
        self.transform = {"standard": None, "quantile": lambda: QuantileNormal(n),
                          "robust": lambda: RobustScale(n)}[transform]
        self.transform = self.transform() if self.transform else None
        self.embedding = {"none": None, "plr": lambda: PeriodicEmbedding(n, dim, sigma),
                          "piecewise_linear": lambda: PiecewiseLinearEmbedding(n, dim, bins)}[embedding]
        self.embedding = self.embedding() if self.embedding else None
        self.out_features = n * (dim if self.embedding is not None else 1) + len(others)

    @torch.no_grad()
    def init_from_data(self, inputs: torch.Tensor) -> None:
        """Fit the transform, then the bins (on the transformed values), on these training rows."""
        x = inputs.flatten(1).float()[:, self.numeric]
        if self.transform is not None:
            self.transform.fit(x)
            x = self.transform(x)
        if hasattr(self.embedding, "fit"):
            self.embedding.fit(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        values = x[:, self.numeric]
        if self.transform is not None:
            values = self.transform(values)
        if self.embedding is not None:
            values = self.embedding(values).flatten(1)
        if not self.n_others:
            return values
        return torch.cat([values, x[:, self.others]], 1)


class TabularMLP(nn.Sequential):
    """An MLP whose first module is a NumericInput: fit() fits that input on the training rows."""

    def init_from_data(self, inputs: torch.Tensor) -> None:
        self[0].init_from_data(inputs)
