"""dlib's face-recognition ResNet as a torch module, read straight from its .dat file.

dlib runs the network on the CPU, one chip at a time (~0.1 s per face on two cores); the synthesis stage
scores hundreds of frames. The same weights in torch run batched, and on the GPU when there is one,
giving the same 128-D descriptors (checked against dlib in tests/test_identity.py).

The file is dlib's binary serialisation of `anet_type` from dlib's dnn_face_recognition_ex.cpp: nested
layer wrappers whose parameters follow innermost (input) first. Tag and skip wrappers store nothing,
so the residual wiring comes from that architecture, and every parsed layer is checked against it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class DlibFormatError(ValueError):
    pass


class _Reader:
    """dlib's serialisation primitives (dlib/serialize.h)."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def int(self) -> int:
        control = self.data[self.pos]
        size, negative = control & 0x0F, bool(control & 0x80)
        if size > 8 or control & 0x70:
            raise DlibFormatError(f"bad integer control byte {control:#x} at offset {self.pos}")
        value = int.from_bytes(self.data[self.pos + 1: self.pos + 1 + size], "little")
        self.pos += 1 + size
        return -value if negative else value

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        return float(mantissa) * 2.0 ** exponent

    def string(self) -> str:
        length = self.int()
        text = self.data[self.pos: self.pos + length].decode("latin-1")
        self.pos += length
        return text

    def bool(self) -> bool:
        char = self.data[self.pos: self.pos + 1]
        if char not in (b"0", b"1"):
            raise DlibFormatError(f"bad bool {char!r} at offset {self.pos}")
        self.pos += 1
        return char == b"1"

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise DlibFormatError(f"unsupported tensor version {version} at offset {self.pos}")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        values = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos).reshape(shape)
        self.pos += 4 * count
        return values.copy()

    def alias_shape(self) -> tuple[int, ...]:
        if self.int() != 1:
            raise DlibFormatError(f"unsupported alias tensor version at offset {self.pos}")
        return tuple(self.int() for _ in range(4))


@dataclass
class Layer:
    kind: str  # con, affine, relu, max_pool, avg_pool, add_prev, fc
    params: dict = field(default_factory=dict)


def _layer(r: _Reader) -> Layer:
    version = r.string()
    if version.startswith("con_"):
        params = r.tensor()
        filters, rows, cols = r.int(), r.int(), r.int()
        stride = (r.int(), r.int())
        padding = (r.int(), r.int())
        weight_shape, bias_shape = r.alias_shape(), r.alias_shape()
        for _ in range(4):  # learning-rate and weight-decay multipliers
            r.float()
        use_bias = r.bool() if version in ("con_5", "con_6") else True
        if version == "con_6":
            r.bool()  # use_relu: a training-time fusion flag, unused by inference
        flat = params.ravel()
        weight_size = int(np.prod(weight_shape))
        weight = flat[:weight_size].reshape(weight_shape)
        bias = flat[weight_size: weight_size + int(np.prod(bias_shape))] if use_bias else np.zeros(filters, np.float32)
        assert weight.shape[0] == filters and weight.shape[2:] == (rows, cols)
        return Layer("con", {"weight": weight, "bias": bias.ravel(), "stride": stride, "padding": padding})
    if version in ("affine_", "affine_2"):
        params = r.tensor().ravel()
        gamma_shape = r.alias_shape()
        r.alias_shape()  # beta has gamma's shape
        r.int()  # mode: conv (per channel) for every affine layer of this network
        if version == "affine_2":
            r.bool()  # disabled
        channels = int(np.prod(gamma_shape))
        return Layer("affine", {"gamma": params[:channels], "beta": params[channels: 2 * channels]})
    if version in ("relu_", "relu_2"):
        if version == "relu_2":
            r.bool()  # disabled
        return Layer("relu")
    if version in ("max_pool_2", "avg_pool_2"):
        window = (r.int(), r.int())
        stride = (r.int(), r.int())
        padding = (r.int(), r.int())
        return Layer(version[:-2], {"window": window, "stride": stride, "padding": padding})
    if version == "add_prev_":
        return Layer("add_prev")
    if version in ("fc_2", "fc_3"):
        outputs, inputs = r.int(), r.int()
        params = r.tensor().ravel()
        weight_shape = r.alias_shape()
        r.alias_shape()  # the bias slot, unused: the embedding layer is fc_no_bias
        r.int()  # bias mode
        for _ in range(4):
            r.float()
        if version == "fc_3":
            r.bool()
        weight = params[: int(np.prod(weight_shape))].reshape(inputs, outputs)
        return Layer("fc", {"weight": weight})
    raise DlibFormatError(f"unexpected layer '{version}' at offset {r.pos}")


@dataclass
class DlibNetWeights:
    input_mean: np.ndarray  # (3,) RGB means subtracted before dividing by 256
    input_size: int
    layers: list[Layer]  # from the input to the output


def read_weights(path: Path) -> DlibNetWeights:
    r = _Reader(Path(path).read_bytes())
    if r.int() != 1 or not r.string().startswith("loss_metric"):
        raise DlibFormatError(f"{path}: not a dlib metric-learning network")
    r.float(), r.float()  # margin and distance threshold of the training loss
    # The wrappers' versions, outermost first: 2 = a layer with parameters, 1 = a tag or skip wrapper,
    # 3 = the innermost layer, which holds the input.
    while (version := r.int()) != 3:
        if version not in (1, 2):
            raise DlibFormatError(f"{path}: unexpected wrapper version {version} at offset {r.pos}")
    if r.string() != "input_rgb_image_sized":
        raise DlibFormatError(f"{path}: expected an input_rgb_image_sized input layer")
    mean = np.array([r.float(), r.float(), r.float()], dtype=np.float32)
    rows, cols = r.int(), r.int()
    layers = []
    while r.pos < len(r.data):
        # Each wrapper, from the one holding the input outwards: its layer, three setup/staleness flags,
        # three cached activation/gradient tensors (empty in a saved net); the innermost adds one integer.
        layers.append(_layer(r))
        r.bool(), r.bool(), r.bool()
        r.tensor(), r.tensor(), r.tensor()
        if len(layers) == 1:
            r.int()  # sample expansion factor
    if rows != cols:
        raise DlibFormatError(f"{path}: expected a square input, got {rows}x{cols}")
    return DlibNetWeights(mean, rows, layers)


def build_module(weights: DlibNetWeights):
    """The torch network for dlib's face-recognition ResNet (anet_type), loaded with `weights`."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    layers = iter(weights.layers)

    def take(kind: str) -> Layer:
        layer = next(layers, None)
        if layer is None or layer.kind != kind:
            raise DlibFormatError(f"expected a {kind} layer, found {layer.kind if layer else 'the end'}")
        return layer

    def conv(layer: Layer) -> nn.Conv2d:
        w = torch.from_numpy(layer.params["weight"])
        module = nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), stride=layer.params["stride"],
                           padding=layer.params["padding"])
        module.weight.data.copy_(w)
        module.bias.data.copy_(torch.from_numpy(layer.params["bias"]))
        return module

    def conv_affine() -> nn.Conv2d:
        """A convolution followed by its affine (frozen batch-norm) layer, folded into one convolution."""
        module = conv(take("con"))
        affine = take("affine")
        gamma, beta = torch.from_numpy(affine.params["gamma"]), torch.from_numpy(affine.params["beta"])
        module.weight.data.mul_(gamma[:, None, None, None])
        module.bias.data.mul_(gamma).add_(beta)
        return module

    def padded_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """dlib's add_prev: tensors of different sizes add as if zero-padded (top-left aligned)."""
        if a.shape == b.shape:
            return a + b
        shape = [max(x, y) for x, y in zip(a.shape, b.shape)]
        out = a.new_zeros(shape)
        out[:, : a.shape[1], : a.shape[2], : a.shape[3]] += a
        out[:, : b.shape[1], : b.shape[2], : b.shape[3]] += b
        return out

    class Residual(nn.Module):
        """relu(x + block(x)); `down` blocks stride 2 and average-pool the shortcut instead."""

        def __init__(self, down: bool):
            super().__init__()
            self.conv1 = conv_affine()
            take("relu")
            self.conv2 = conv_affine()
            self.pool = None
            if down:
                pool = take("avg_pool").params
                self.pool = nn.AvgPool2d(pool["window"], pool["stride"], pool["padding"])
            take("add_prev")
            take("relu")

        def forward(self, x):
            y = self.conv2(F.relu(self.conv1(x)))
            return F.relu(padded_add(self.pool(x) if self.pool is not None else x, y))

    class DlibResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.from_numpy(weights.input_mean).view(1, 3, 1, 1))
            self.stem = conv_affine()
            take("relu")
            pool = take("max_pool").params
            self.pool = nn.MaxPool2d(pool["window"], pool["stride"], pool["padding"])
            # anet_type from the input up: 3 x 32, down + 3 x 64, down + 2 x 128, down + 2 x 256, down 256.
            plan = [False] * 3 + [True] + [False] * 3 + [True] + [False] * 2 + [True] + [False] * 2 + [True]
            self.blocks = nn.Sequential(*(Residual(down) for down in plan))
            if take("avg_pool").params["window"] != (0, 0):
                raise DlibFormatError("expected a global average pool before the embedding")
            self.embedding = nn.Parameter(torch.from_numpy(take("fc").params["weight"]))
            if next(layers, None) is not None:
                raise DlibFormatError("unexpected layers after the embedding")

        def forward(self, chips: torch.Tensor) -> torch.Tensor:
            """(N, 150, 150, 3) uint8 RGB face chips (dlib.get_face_chip) -> (N, 128) descriptors."""
            x = (chips.permute(0, 3, 1, 2).float() - self.mean) / 256.0
            x = self.blocks(self.pool(F.relu(self.stem(x))))
            return x.mean(dim=(2, 3)) @ self.embedding

    return DlibResNet().eval()
