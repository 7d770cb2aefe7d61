"""Sampled synthetic graphs: the training data of the per-kernel fits, never an evaluated model.

Like nn-Meter, kernels are measured in sampled configurations, never in the models that are
evaluated. :func:`sample_graphs` draws random small networks of one family each: chains of
Conv layers of random kind, channels, map size, kernel size, stride and epilogue, with
residual Adds and pools (``conv``); 1-D dilated Conv chains (``conv1d``); Gemm/MatMul chains
(``gemm``); batch-1 fully connected layers with large weights (``fc``); element-wise, pooling
and data-movement chains (``misc``); transformer-block pieces (``transformer``); and whole
random CNNs for composing kernel times into a network's (``network``).
:mod:`.kernel_bench` profiles them.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .microbench import ELEMENTWISE, _model

CHANNELS = [8, 16, 24, 32, 48, 64, 96, 128, 144, 160, 192, 256, 320, 384, 512, 576, 960, 1024]
ODD_CHANNELS = [3, 6, 12, 20, 36, 58, 116, 120, 232, 240]


class Builder:
    def __init__(self, rng: np.random.Generator):
        self.rng, self.nodes, self.inits, self.count = rng, [], [], 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def const(self, array: np.ndarray) -> str:
        name = self.name("c")
        self.inits.append(numpy_helper.from_array(array.astype(np.float32), name))
        return name

    def ints(self, values: list[int]) -> str:
        """An int64 constant (a shape) as a Constant node, as torch exports shapes: onnxruntime
        merges a Gemm's output Reshape with a following Reshape whose shape is an initializer,
        which exported models do not see."""
        return self.node("Constant", [], value=numpy_helper.from_array(np.array(values, np.int64)))

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        out = self.name("t")
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"n_{out}", **attrs))
        return out

    def linear(self, x: str, w_kn: np.ndarray, gemm: bool = False) -> str:
        """x @ w_kn plus a zero bias, as exporters write it: a Gemm (its weight stored transposed,
        transB) or a MatMul then an Add."""
        n = w_kn.shape[1]
        if gemm:
            return self.node("Gemm", [x, self.const(w_kn.T), self.const(np.zeros(n))], transB=1)
        return self.node("Add", [self.node("MatMul", [x, self.const(w_kn)]), self.const(np.zeros(n))])

    def conv(self, x: str, cin: int, cout: int, k: int, s: int, g: int, dims: int = 2, d: int = 1) -> str:
        w = self.rng.standard_normal((cout, cin // g, *([k] * dims))) / np.sqrt(cin // g * k ** dims)
        pads = [d * (k // 2)] * (2 * dims)
        return self.node("Conv", [x, self.const(w), self.const(np.zeros(cout))], group=g, pads=pads, strides=[s] * dims,
                         dilations=[d] * dims)

    def epilogue(self, x: str, c: int, dims: int = 2) -> str:
        r = self.rng.random()
        if r < 0.1:
            x = self.bn(x, c, dims)
        act = self.rng.choice(["Relu", "Relu", "Clip", "none", "none", "PRelu", "Sigmoid", "HardSigmoid"])
        if act == "Clip":
            x = self.node("Clip", [x, self.const(np.array(0.0)), self.const(np.array(6.0))])
        elif act == "PRelu":
            x = self.node("PRelu", [x, self.const(np.full((c, *[1] * dims), 0.2))])
        elif act != "none":
            x = self.node(str(act), [x])
        return x

    def bn(self, x: str, c: int, dims: int = 2) -> str:
        return self.node("BatchNormalization", [x, *(self.const(self.rng.uniform(0.5, 1.5, c)) for _ in range(4))])

    def model(self, x_shape: list[int], out: str) -> onnx.ModelProto:
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)
        return _model(self.nodes, [x], out, self.inits)


def conv_graph(rng: np.random.Generator) -> tuple[onnx.ModelProto, list[int]]:
    b = Builder(rng)
    size = int(rng.choice([7, 14, 14, 28, 28, 56, 56, 112, 224]))
    c = int(rng.choice([3, *CHANNELS[:12], *ODD_CHANNELS[:6]]))
    shape, x = [1, c, size, size], "x"
    cap = 2e9 if rng.random() < 0.15 else 4e8  # now and then a VGG-sized layer
    for _ in range(int(rng.integers(2, 6))):
        kind = rng.choice(["conv", "conv", "pointwise", "pointwise", "depthwise", "depthwise", "grouped", "large"])
        s = 2 if size > 7 and rng.random() < 0.25 else 1
        k, g = {"conv": 3, "pointwise": 1, "depthwise": int(rng.choice([3, 3, 5])), "grouped": int(rng.choice([1, 3])),
                "large": int(rng.choice([5, 7, 11]))}[kind], 1
        cout = int(rng.choice(CHANNELS + ODD_CHANNELS if rng.random() < 0.3 else CHANNELS))
        if kind == "depthwise":
            cout = g = c
        elif kind == "grouped":
            g = int(rng.choice([2, 3, 4, 8]))
            cout = max(g, cout // g * g)
            if c % g:
                continue
        out_size = (size + s - 1) // s
        while kind != "depthwise" and cout > 8 and c // g * cout * k * k * out_size ** 2 > cap:
            cout //= 2
            cout = max(g, cout // g * g) if g > 1 and kind == "grouped" else cout
        if kind != "depthwise" and c // g * cout * k * k * out_size ** 2 > cap:
            continue
        y = b.conv(x, c, cout, k, s, g)
        if cout == c and s == 1 and rng.random() < 0.3:
            y = b.node("Add", [y, x])
        x, c, size = b.epilogue(y, cout), cout, out_size
        if size >= 14 and rng.random() < 0.12:
            x, size = b.node(str(rng.choice(["MaxPool", "AveragePool"])), [x], kernel_shape=[3, 3], strides=[2, 2],
                             pads=[1, 1, 1, 1]), (size + 1) // 2
    if rng.random() < 0.3:
        x = b.node("Flatten", [b.node("GlobalAveragePool", [x])])
        n = int(rng.choice([10, 100, 1000]))
        x = b.node("Gemm", [x, b.const(rng.standard_normal((n, c)) * 0.05), b.const(np.zeros(n))], transB=1)
    return b.model(shape, x), shape


def conv1d_graph(rng: np.random.Generator) -> tuple[onnx.ModelProto, list[int]]:
    b = Builder(rng)
    steps, c = int(rng.integers(40, 320)), int(rng.choice([24, 30, 40, 64, 128, 256, 512]))
    shape, x = [1, c, steps], "x"
    for _ in range(int(rng.integers(2, 5))):
        cout = int(rng.choice([64, 128, 256, 512, 1500]))
        k, d = int(rng.choice([1, 3, 5])), int(rng.choice([1, 2, 3]))
        while c * cout * k * steps > 3e8:
            cout //= 2
        x = b.conv(x, c, cout, k, 1, 1, dims=1, d=d)
        x = b.node("Relu", [x])
        if rng.random() < 0.6:
            x = b.bn(x, cout, 1)
        c = cout
    return b.model(shape, x), shape


def gemm_graph(rng: np.random.Generator) -> tuple[onnx.ModelProto, list[int]]:
    b = Builder(rng)
    rows = int(rng.choice([1, 1, 1, 4, 16, 64, 128]))
    width = int(rng.choice([64, 128, 256, 400, 512, 1024, 2048, 4096, 9216, 25088]))
    shape, x = [rows, width], "x"
    for _ in range(int(rng.integers(1, 4))):
        n = int(rng.choice([10, 64, 84, 120, 128, 256, 512, 1000, 1024, 2048, 4096]))
        # batch-1 layers up to 440 MB of weights (streamed from DRAM), batched ones by work
        while width * n * rows > 2e8 or width * n > 1.1e8:
            n //= 2
        w = rng.standard_normal((width, n)) / np.sqrt(width)
        x = b.linear(x, w, gemm=rng.random() < 0.5)
        if rng.random() < 0.5:
            x = b.node("Relu", [x])
        width = n
    return b.model(shape, x), shape


def fc_graph(rng: np.random.Generator) -> tuple[onnx.ModelProto, list[int]]:
    """Batch-1 fully connected layers with large weights (4-440 MB: streamed from DRAM every run)."""
    b = Builder(rng)
    width = int(rng.choice([1024, 2048, 4096, 9216, 12544, 25088]))
    shape, x = [1, width], "x"
    for _ in range(int(rng.integers(1, 3))):
        n = int(rng.choice([1000, 2048, 4096]))
        while width * n > 1.1e8:
            n //= 2
        x = b.linear(x, (rng.standard_normal((n, width)) / np.sqrt(width)).T, gemm=True)
        if rng.random() < 0.5:
            x = b.node("Relu", [x])
        width = n
    return b.model(shape, x), shape


def misc_graph(rng: np.random.Generator) -> tuple[onnx.ModelProto, list[int]]:
    b = Builder(rng)
    c, size = int(rng.choice([8, 16, 32, 64, 128, 256, 512])), int(rng.choice([7, 14, 28, 56, 112]))
    while c * size * size > 2e6:
        size //= 2
    shape, x = [1, c, size, size], "x"
    for _ in range(int(rng.integers(2, 6))):
        op = str(rng.choice([*ELEMENTWISE, "MaxPool", "AveragePool", "GlobalAveragePool", "Transpose", "Concat", "Reshape"]))
        if op == "LayerNormalization":
            continue
        attrs, extra = ELEMENTWISE.get(op, ({}, None))
        if op in ("MaxPool", "AveragePool"):
            if size < 4:
                continue
            k = int(rng.choice([2, 3]))
            x, size = b.node(op, [x], kernel_shape=[k, k], strides=[2, 2]), (size - k) // 2 + 1
        elif op == "GlobalAveragePool":
            y = b.node(op, [x])
            x = b.node("Add", [x, y])
        elif op == "Transpose" and c % 2 == 0 and rng.random() < 0.5:  # a channel shuffle (ShuffleNet): rows stay contiguous
            groups = int(rng.choice([g for g in (2, 3, 4, 8) if c % g == 0]))
            x = b.node("Reshape", [x, b.ints([1, groups, c // groups, size, size])])
            x = b.node(op, [x], perm=[0, 2, 1, 3, 4])
            x = b.node("Reshape", [x, b.ints([1, c, size, size])])
        elif op == "Transpose":
            x = b.node(op, [x], perm=[0, 1, 3, 2])
        elif op == "Reshape":
            x = b.node(op, [x, b.ints([1, c, size, size])])
        elif op == "Concat":
            x, c = b.node(op, [x, x], axis=1), 2 * c
        else:
            inputs = [x]
            if extra == "same":
                inputs.append(b.node("Relu", [x]))
            elif extra == "slope":
                inputs.append(b.const(np.full((c, 1, 1), 0.2)))
            elif extra == "clip":
                inputs += [b.const(np.array(-1.0)), b.const(np.array(1.0))]
            elif extra == "bn":
                x = b.bn(x, c)
                continue
            x = b.node(op, inputs, **attrs)
    return b.model(shape, x), shape


def transformer_graph(rng: np.random.Generator) -> tuple[onnx.ModelProto, list[int]]:
    """Random transformer-block pieces on a [1, tokens, width] sequence, written as exporters
    write them (so that onnxruntime's transformer fusions apply: :mod:`.transformer_fusions`):
    linear layers (MatMul + bias Add), exact Gelu (Div, Erf, Add, Mul, Mul), residual Add +
    LayerNormalization, LayerNormalization alone, and self-attention (per-head Reshape and
    Transpose, scaled Q x K^T, Softmax, x V, back to the sequence)."""
    b = Builder(rng)
    tokens, width = int(rng.choice([8, 16, 32, 64, 128, 256])), int(rng.choice([64, 128, 256, 384, 512, 768]))
    shape, x = [1, tokens, width], "x"

    def linear(x: str, cin: int, cout: int) -> str:
        return b.linear(x, rng.standard_normal((cin, cout)) / np.sqrt(cin))

    def norm(x: str) -> str:
        return b.node("LayerNormalization", [x, b.const(np.ones(width)), b.const(np.zeros(width))], axis=-1)

    for _ in range(int(rng.integers(2, 6))):
        piece = str(rng.choice(["feed-forward", "residual-norm", "norm", "attention"]))
        if piece == "feed-forward":
            hidden = width * int(rng.choice([2, 4]))
            while tokens * width * hidden > 1e8:
                hidden //= 2
            h = linear(x, width, hidden)
            erf = b.node("Erf", [b.node("Div", [h, b.const(np.array(np.sqrt(2.0)))])])
            gelu = b.node("Mul", [b.node("Mul", [h, b.node("Add", [erf, b.const(np.array(1.0))])]), b.const(np.array(0.5))])
            x = linear(gelu, hidden, width)
        elif piece == "residual-norm":
            x = norm(b.node("Add", [linear(x, width, width), x]))
        elif piece == "norm":
            x = norm(x)
        else:
            heads = int(rng.choice([h for h in (1, 2, 4, 8, 12) if width % h == 0]))
            d = width // heads
            q, k, v = (b.node("Reshape", [linear(x, width, width), b.ints([1, tokens, heads, d])], allowzero=0) for _ in range(3))
            q, v = (b.node("Transpose", [t], perm=[0, 2, 1, 3]) for t in (q, v))
            k = b.node("Transpose", [k], perm=[0, 2, 3, 1])
            scores = b.node("Softmax", [b.node("Div", [b.node("MatMul", [q, k]), b.const(np.array(np.sqrt(d)))])], axis=-1)
            context = b.node("Transpose", [b.node("MatMul", [scores, v])], perm=[0, 2, 1, 3])
            x = b.node("Reshape", [context, b.ints([1, tokens, width])])
    return b.model(shape, x), shape


def network_graph(rng: np.random.Generator) -> tuple[onnx.ModelProto, list[int]]:
    """A whole random CNN (for composing kernel times into a network's): a stem, 2-5 stages of
    random blocks (plain 3x3, residual 3x3 pair, inverted residual, grouped) that halve the map
    and widen the channels, then pooling and a classifier; from LeNet-sized to ResNet-sized."""
    b = Builder(rng)
    tiny = rng.random() < 0.3
    size = int(rng.choice([28, 32])) if tiny else int(rng.choice([112, 160, 224]))
    c = int(rng.choice([6, 8, 16])) if tiny else int(rng.choice([16, 24, 32, 64]))
    shape = [1, 1 if tiny and rng.random() < 0.5 else 3, size, size]
    x = b.node("Relu", [b.conv("x", shape[1], c, int(rng.choice([3, 5])), 1 if tiny else 2, 1)])
    size = size if tiny else size // 2
    for _ in range(int(rng.integers(2, 4 if tiny else 6))):
        cout = min(1024, c * int(rng.choice([1, 2, 2])))
        x = b.node("Relu", [b.conv(x, c, cout, 3, 2 if size > 7 else 1, 1)])
        c, size = cout, (size + 1) // 2 if size > 7 else size
        for _ in range(int(rng.integers(0, 2 if tiny else 4))):
            block = rng.choice(["plain", "residual", "inverted", "grouped"])
            if block == "plain":
                x = b.node("Relu", [b.conv(x, c, c, 3, 1, 1)])
            elif block == "residual":
                y = b.node("Relu", [b.conv(x, c, c, 3, 1, 1)])
                x = b.node("Relu", [b.node("Add", [b.conv(y, c, c, 3, 1, 1), x])])
            elif block == "inverted":
                e = c * int(rng.choice([2, 4, 6]))
                y = b.node("Clip", [b.conv(x, c, e, 1, 1, 1), b.const(np.array(0.0)), b.const(np.array(6.0))])
                y = b.node("Clip", [b.conv(y, e, e, 3, 1, e), b.const(np.array(0.0)), b.const(np.array(6.0))])
                x = b.node("Add", [b.conv(y, e, c, 1, 1, 1), x])
            elif c % 4 == 0:
                x = b.node("Relu", [b.conv(x, c, c, 3, 1, 4)])
    if tiny:
        x = b.node("Flatten", [b.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])])
        width = c * (size // 2) ** 2
    else:
        x, width = b.node("Flatten", [b.node("GlobalAveragePool", [x])]), c
    for n in ([120, 10] if tiny else [1000]):
        x = b.node("Gemm", [x, b.const(rng.standard_normal((n, width)) * 0.05), b.const(np.zeros(n))], transB=1)
        width = n
    return b.model(shape, x), shape


FAMILIES = {"conv": conv_graph, "conv1d": conv1d_graph, "gemm": gemm_graph, "fc": fc_graph, "misc": misc_graph,
            "transformer": transformer_graph,
            "network": network_graph}


def sample_graphs(counts: dict[str, int], seed: int = 0):
    """(family, ModelProto, input shape) for ``counts[family]`` random graphs of each family."""
    rng = np.random.default_rng(seed)
    for family, count in counts.items():
        for _ in range(count):
            model, shape = FAMILIES[family](rng)
            yield family, model, shape


