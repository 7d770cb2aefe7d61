"""Kernel detection for the ``host`` profile: which kernels onnxruntime's CPU provider runs.

nn-Meter (Zhang et al., MobiSys 2021) predicts a model's latency as the sum of its *kernels*:
the units a runtime executes after fusion, each with its own predictor (:mod:`.kernel_fit`).
This module groups the mapping's rows into the kernels onnxruntime (default optimization
level, one thread, x86 MLAS) runs, by its fusion and layout rules:

- Conv + BatchNormalization / constant Add, Sub, Mul, Div fold into the Conv; one activation
  (Relu, Clip, Sigmoid, Tanh, LeakyRelu, HardSigmoid) fuses into it (FusedConv); Gemm and
  MatMul take a constant Add (MatMul+Add -> Gemm) and one activation (FusedGemm); a Gemm or
  MatMul of one row (batch-1 fully connected) is kind ``gemv``, a regime of its own. Anything
  after the activation (a BatchNormalization after a Relu, a PRelu) is a kernel of its own.
- NCHWc layout (``NchwcTransformer``, AVX2/AVX-512 only; block = fp32 lanes): 2-D Convs run
  as NCHWc kernels (output channels padded up to the block); 1-D ones stay NCHW (im2col +
  SGEMM; kind conv1d_nchw).
  Measured on onnxruntime 1.32 (AVX-512, block 16), which pads channels: group 1 runs NCHWc when
  its input channels are below the block (read as NCHW) or a multiple of 4; depthwise when the
  channels are a multiple of 4; grouped when channels per group (in and out) are multiples of
  the block. Everything else stays NCHW. NCHWc Convs fuse a residual Add/Sum only when its
  other operand is written by an NCHWc kernel (else the Add runs NCHW); an NCHW 2-D Conv with a
  bias fuses a residual Add, never a Sum (ConvAddActivationFusion), and its activation after it.
  A residual run on its own is no input of the Conv before it (the mapping counts it as one).
  Pools run NCHWc when their channels are a multiple of the block (whatever their input; global
  pools only on an NCHWc input; not an AveragePool with ceil_mode and count_include_pad); Concat
  on channels and Add/Mul/Sum/activations keep NCHWc when all their inputs are NCHWc, and a Mul
  by a per-channel constant too (a 1x1 depthwise NCHWc Conv), never an Add/Sub/Div by a
  constant; any other consumer of an NCHWc tensor gets a ReorderOutput kernel, and an NCHWc
  Conv fed by an NCHW tensor a ReorderInput kernel (one per tensor).
- Identity and Dropout vanish; nodes computing only from constants and shapes are folded.
- Transformer subgraphs run as onnxruntime's fused kernels (:mod:`.transformer_fusions`):
  Gelu, SkipLayerNormalization, FusedMatMul (a MatMul's scalar scale), and MatMul + bias
  Add as a Gemm with a Reshape kernel before and after it when the input has more than two
  dimensions.

``Kernel.name`` follows the names onnxruntime gives the optimized nodes: the head node's
name (``<output>_nchwc`` in onnxruntime for NCHWc nodes, stripped by :func:`.ort_kernel_names.ort_kernels`),
``reorder_in:<value>`` / ``reorder_out:<value>`` for reorders, ``reshape_in:<row>`` /
``reshape_out:<row>`` for the Reshapes around a fused MatMul + Add. :mod:`.ort_kernel_names`
reads the same list back from onnxruntime's optimized graph, which tests and calibration compare.
"""

from __future__ import annotations

import math
from typing import Any

import onnx_ir as ir
from nncc.irutils import static_shape

from . import transformer_fusions
from .kernel_features import Kernel, data_features, value_bytes, conv_features
from .mapping import KernelRow, MobileCpuMapping

CONV_ACTIVATIONS = frozenset({"Relu", "Clip", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid"})
FOLDABLE = frozenset({"BatchNormalization", "Add", "Sub", "Mul", "Div"})
NCHWC_ELEMENTWISE = frozenset({"Add", "Sum", "Mul", "Relu", "Clip", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid",
                               "BatchNormalization"})  # onnxruntime runs the last as an NCHWc depthwise 1x1 Conv
NCHWC_POOLS = frozenset({"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"})
BINARY = frozenset({"Add", "Sum", "Mul", "Sub", "Div"})
VANISH = frozenset({"Identity", "Dropout"})
RESHAPES = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze"})
SHAPE_SOURCES = frozenset({"Shape", "Size", "Constant", "ConstantOfShape"})
# Element-wise ops onnxruntime's NCHWc layout runs as a 1x1 depthwise Conv, and what it appends
# to the output's name to name that Conv.
NCHWC_CONV_SUFFIX = {"Mul": "_mul", "BatchNormalization": "_bn"}
# Ops whose two-input kernel is another op's: onnxruntime's Sum of two tensors ran within 1% of
# Add's time on the same tensors (ShuffleNet's 136x28x28 to 544x7x7 and a 64x56x56 residual, one
# thread); the synthetic graphs sample Add, so such a Sum is costed by Add's fit. With no fit of its
# own it had fallen back to the pooled element-wise fit, which priced ShuffleNet's 13 Sums (173 us
# measured) at 0.4-1.9 ms across calibration draws.
TWO_INPUT_SAME_AS = {"Sum": "Add"}
def block_size(config: Any) -> int:
    """NCHWc block (fp32 lanes) where onnxruntime uses NCHWc (x86 with AVX2: fuse_residual_add), else 0."""
    return config.lanes(32) if config.fuse_residual_add and config.simd_bits >= 256 else 0


def detect(mapping: MobileCpuMapping, config: Any) -> list[Kernel]:
    """The kernels onnxruntime runs for this mapping, in execution order.

    onnxruntime fuses a residual Add/Sum into an NCHWc Conv only when every operand is already
    the output of an NCHWc kernel (its NCHWc transformer leaves the Add alone otherwise, NCHW,
    and the Conv's output is reordered out), and an operand's producer may come after the Conv
    in the graph's order (ResNet's downsampling shortcut). So detection runs again with the
    values the previous run found NCHWc until they no longer change (two runs, three when a
    refused join changes what follows)."""
    written: frozenset[ir.Value] | None = None
    for _ in range(4):
        found, nchwc = _detect_once(mapping, config, written)
        if nchwc == written:
            break
        written = nchwc
    return found


def _detect_once(mapping: MobileCpuMapping, config: Any,
                 written: frozenset[ir.Value] | None) -> tuple[list[Kernel], frozenset[ir.Value]]:
    """One run of :func:`detect`: the kernels, and the values NCHWc kernels write. A residual
    joins its Conv only if its other operands are in ``written`` (None: assumed so)."""
    block = block_size(config)
    members: dict[str, list[KernelRow]] = {}
    for row in mapping.layers:
        if row.fused_into is not None:
            members.setdefault(row.fused_into, []).append(row)
    nchwc: set[ir.Value] = set()
    reordered_in: set[ir.Value] = set()
    reordered_out: dict[ir.Value, None] = {}
    static: set[ir.Value] = set()
    kernels: list[Kernel] = []
    residuals: list[tuple[ir.Value, str]] = []
    fusions = transformer_fusions.find(mapping)
    inside_another = transformer_fusions.absorbed(fusions)
    activation_joins: dict[ir.Node, Kernel] = {}  # activation -> the NCHWc Conv-like kernel it runs in

    def to_nchw(value: ir.Value | None, owner: str) -> None:
        if value is not None and value in nchwc and value not in reordered_out:
            reordered_out[value] = None
            kernels.append(Kernel(f"reorder_out:{value.name}", "reorder_out", owner, data_features(value_bytes(value), value_bytes(value))))

    def to_nchwc(value: ir.Value | None, owner: str) -> None:
        if value is not None and value not in nchwc and value not in reordered_in and value.const_value is None:
            reordered_in.add(value)
            kernels.append(Kernel(f"reorder_in:{value.name}", "reorder_in", owner, data_features(value_bytes(value), value_bytes(value))))

    def standalone(row: KernelRow, owner: str) -> None:
        """A layer onnxruntime runs as its own kernel (not a Conv/Gemm head)."""
        node = row.layer.node
        op = row.op
        inputs = [v for v in node.inputs if v is not None and v.const_value is None]
        out = node.outputs[0] if node.outputs else None
        host = activation_joins.pop(node, None)
        if host is not None and out is not None:  # fused into the NCHWc Conv before it
            host.rows.append(row.name)
            host.out = out.name or ""
            host.aliases.append(out.name or "")
            nchwc.add(out)
            return
        if op in VANISH:
            if out is not None and inputs and inputs[0] in nchwc:
                nchwc.add(out)
            return
        if op in SHAPE_SOURCES or (inputs and all(v in static for v in inputs)) or (not inputs and node.inputs):
            static.update(v for v in node.outputs if v is not None)
            return
        in_bytes = sum(value_bytes(v) for v in inputs)
        out_bytes = sum(value_bytes(v) for v in node.outputs)
        shape = static_shape(inputs[0]) if inputs else None
        keeps = False
        constants = [v for v in node.inputs if v is not None and v.const_value is not None]
        if block and op in NCHWC_POOLS and shape is not None and len(shape) == 4 and _nchwc_pool(node, shape, block, inputs[0] in nchwc):
            keeps = True
            to_nchwc(inputs[0], owner)
        elif block and inputs and all(v in nchwc for v in inputs):
            if op == "Concat":
                keeps = node.attributes.get_int("axis", 0) == 1 and all((static_shape(v) or (0, 1))[1] % block == 0 for v in inputs)
            elif op in BINARY and constants:
                # A constant operand: only a Mul by one value per channel stays NCHWc (onnxruntime
                # runs it as a 1x1 depthwise NCHWc Conv); Add, Sub, Div and other shapes reorder out.
                keeps = op == "Mul" and shape is not None and len(shape) == 4 and _per_channel(constants[0], shape[1])
            elif op in NCHWC_ELEMENTWISE:
                keeps = len({static_shape(v) for v in inputs}) == 1
        if not keeps:
            for value in inputs:
                to_nchw(value, owner)
        elif out is not None:
            nchwc.add(out)
        if op in RESHAPES:
            kind = reshape_kind(out)
        elif op in ("Transpose", "Concat"):
            kind = op.lower()
        elif row.op_class == "pool":
            kind = "pool_nchwc" if keeps and op in NCHWC_POOLS else "pool" if op in NCHWC_POOLS else f"other:{op}"
        elif row.op_class in ("elementwise", "fused"):
            kind = f"eltwise:{TWO_INPUT_SAME_AS.get(op, op) if len(node.inputs) == 2 else op}"
        else:
            kind = f"other:{op}"
        if kind == "pool_nchwc" or kind == "pool":
            kernel = math.prod(node.attributes.get_ints("kernel_shape", [0])) or (math.prod(shape[2:]) if shape else 1)
            feats = (0.0, float(in_bytes), float(out_bytes), 0.0, 0.0, 0.0, float(kernel), 1.0, float(out_bytes) / 4)
        else:
            feats = data_features(in_bytes, out_bytes)
        # onnxruntime names the NCHWc Conv a Mul by a constant or a BatchNormalization becomes
        # after its output: "<output>_mul", "<output>_bn".
        suffix = NCHWC_CONV_SUFFIX.get(op) if keeps and out is not None and (constants or op != "Mul") else None
        aliases = [f"{out.name}{suffix}"] if suffix else []
        kernels.append(Kernel(row.name, kind, owner, feats, [row.name], out=out.name if out is not None else "", aliases=aliases))
        if suffix:  # a Conv now: like any NCHWc Conv it takes the activation that alone reads it
            uses = list(out.uses())
            if len(uses) == 1 and not out.is_graph_output() and uses[0][0].op_type in CONV_ACTIVATIONS:
                activation_joins[uses[0][0]] = kernels[-1]

    for row in mapping.layers:
        node = row.layer.node if row.layer is not None else None
        if node is None or row.fused_into is not None or row.name in inside_another:
            continue
        fusion = fusions.get(row.name)
        if fusion is not None and fusion.kind:
            _fused_elementwise(row, fusion, kernels, to_nchw)
        elif row.op_class in ("conv", "pointwise", "depthwise", "grouped", "gemm") and row.dtype == "fp32" and row.steps == 1 \
                and node.op_type in ("Conv", "Gemm", "MatMul"):
            joined = fusion.members if fusion is not None else []
            at = len(kernels)
            _head(row, node, members.get(row.name, []) + joined, block, nchwc, kernels, to_nchw, to_nchwc, standalone, residuals,
                  written)
            if fusion is not None and fusion.reshapes:  # onnxruntime flattens the input to 2-D and back around its Gemm
                gemm = next(i for i in range(at, len(kernels)) if kernels[i].name == row.name)
                size_in, size_out = value_bytes(node.inputs[0]), kernels[gemm].features[2]
                last = next((v for v in node.graph.outputs if v.name == kernels[gemm].out), None) if node.graph else None
                kernels.insert(gemm + 1, Kernel(f"reshape_out:{row.name}", reshape_kind(last), row.name, data_features(size_out, size_out)))
                kernels.insert(gemm, Kernel(f"reshape_in:{row.name}", "reshape", row.name, data_features(size_in, size_in)))
        elif row.op_class in ("noop", "data", "pool", "elementwise"):
            standalone(row, row.name)
        else:  # int8, recurrent and other kernels: no per-kernel fit, costed by the roofline
            for value in node.inputs:
                to_nchw(value, row.name)
            kernels.append(Kernel(row.name, f"other:{row.op}", row.name, (), [row.name]))
    # A residual Add fused into an NCHWc Conv reads its other operand NCHWc: written by an NCHWc
    # kernel, which may come after the Conv in the graph's order (ResNet's shortcut); a reorder
    # only in a first run, which has not yet seen which values are.
    for value, owner in residuals:
        to_nchwc(value, owner)
    for value in mapping.layers[0].layer.node.graph.outputs if mapping.layers and mapping.layers[0].layer else []:
        to_nchw(value, mapping.layers[-1].name)
    return kernels, frozenset(nchwc)


def reshape_kind(out: ir.Value | None) -> str:
    """A Reshape (Flatten, Squeeze, Unsqueeze) moves no data: onnxruntime's allocation planner
    gives its output its input's buffer (the kernel declares the alias), so it costs its
    dispatch whatever its size (kind ``reshape``). One writing a graph output gets a buffer of
    its own and copies (``reshape_copy``): on onnxruntime 1.32 a 1.6 MB Reshape took 8 us
    before a Relu and 141 us as the graph's output. One kind for both priced ShuffleNet's 1.4 MB
    channel-shuffle Reshapes at 34 us (10 us profiled) from a sampled graph's final Reshape."""
    return "reshape_copy" if out is not None and out.is_graph_output() else "reshape"


def _fused_elementwise(row: KernelRow, fusion: transformer_fusions.Fusion, kernels: list[Kernel], to_nchw) -> None:
    """One kernel for an element-wise group onnxruntime fuses (Gelu, SkipLayerNormalization)."""
    group = [row, *fusion.members]
    made = {v for m in group for v in m.layer.node.outputs if v is not None}
    inputs = list(dict.fromkeys(v for m in group for v in m.layer.node.inputs
                                if v is not None and v.const_value is None and v not in made))
    for value in inputs:
        to_nchw(value, row.name)
    last = group[-1].layer.node.outputs[0]
    kernels.append(Kernel(row.name, fusion.kind, row.name, data_features(sum(value_bytes(v) for v in inputs), value_bytes(last)),
                          [m.name for m in group], out=last.name or "", aliases=[v.name or "" for v in made]))


def _nchwc_pool(node: ir.Node, shape: tuple[int, ...], block: int, nchwc_input: bool) -> bool:
    """Whether onnxruntime's NchwcTransformer runs this 4-D pool NCHWc (measured on onnxruntime
    1.32, AVX-512): channels a multiple of the block, whatever the input's layout (an NCHWc
    input of other channels is reordered out first); global pools only on an NCHWc input; an
    AveragePool with both ceil_mode and count_include_pad stays NCHW."""
    if shape[1] % block:
        return False
    if node.op_type.startswith("Global"):
        return nchwc_input
    return not (node.op_type == "AveragePool" and node.attributes.get_int("ceil_mode", 0)
                and node.attributes.get_int("count_include_pad", 0))


def _per_channel(value: ir.Value, channels: int) -> bool:
    """A constant of one value per channel of an NCHW tensor: shape (C, 1, 1) after leading 1s."""
    shape = list(value.const_value.shape)
    while shape and shape[0] == 1 and len(shape) > 3:
        shape.pop(0)
    return shape == [channels, 1, 1]


def _head(row, node, fused, block, nchwc, kernels, to_nchw, to_nchwc, standalone, residuals, written) -> None:
    x = node.inputs[0]
    shape = static_shape(x)
    kind, needs_nchwc_input, cout_pad = "gemm", False, 0
    if node.op_type == "Conv":
        w = node.inputs[1].const_value.shape if node.inputs[1] is not None and node.inputs[1].const_value is not None else None
        kind = "conv1d_nchw" if w is not None and len(w) == 3 else "conv_nchw"  # 1-D: its own im2col regime
        group = node.attributes.get_int("group", 1)
        if block and w is not None and shape is not None and len(shape) == 4:
            cout, cin = w[0], w[1] * group
            if group > 1 and group == cin == cout and cin % 4 == 0:
                kind, needs_nchwc_input = "depthwise_nchwc", True
            elif group > 1 and (cin // group) % block == 0 and (cout // group) % block == 0:
                kind, needs_nchwc_input = "grouped_nchwc", True
            elif group == 1 and (cin < block or cin % 4 == 0):
                kind = "pointwise_nchwc" if all(k == 1 for k in w[2:]) else "conv_nchwc"
                needs_nchwc_input = cin >= block
                cout_pad = -(-cout // block) * block
    nchwc_head = kind.endswith("_nchwc")
    if kind == "pointwise_nchwc" and not needs_nchwc_input:
        # Fewer input channels than a block: onnxruntime's NCHWc conv reads the NCHW input
        # directly (as a first layer's), a regime of its own: such 1x1 convs at 224 x 224 ran
        # 3-10x slower per MAC than blocked ones and were the nearest neighbours of MobileNetV2's
        # 112 x 112 pointwise convs (predicted up to 1.9x too slow). Stems with spatial kernels
        # stay with conv_nchwc, where they predict well.
        kind = "pointwise_nchw_in"
    if needs_nchwc_input:
        to_nchwc(x, row.name)
    else:
        to_nchw(x, row.name)
    # Which of the mapping's fused layers onnxruntime really runs inside this kernel.
    inside, stage, rest = [], 0, []
    for member in fused:
        op = member.op
        mnode = member.layer.node
        residual = _is_residual(mnode)
        if rest:
            rest.append(member)
        elif op in FOLDABLE and not residual and stage == 0 and kind != "gemm" or (kind == "gemm" and op == "Add" and stage == 0 and not residual):
            inside.append(member)
        elif kind == "gemm" and stage == 0 and transformer_fusions.scale_joins_matmul(node, mnode):
            inside.append(member)  # onnxruntime's FusedMatMul (alpha)
        elif residual and nchwc_head and stage <= 1 and (written is None or all(
                v in written for v in mnode.inputs if v is not None and v not in chain_outputs(row, inside))):
            stage = 2
            inside.append(member)
            for value in mnode.inputs:
                if value is not None and value.producer() is not None and value.producer().name not in {row.name, *(m.name for m in inside)}:
                    residuals.append((value, row.name))  # written NCHWc by a kernel, maybe later in the graph
        elif residual and not nchwc_head and stage <= 1 and _conv_add_fuses(node, mnode, inside):
            stage = 2
            inside.append(member)
        elif op in CONV_ACTIVATIONS and stage < 3:
            stage = 3
            inside.append(member)
        else:
            rest.append(member)
    feats = conv_features(row, cout_pad)
    unfused = _unfused_residual_bytes(row, fused, rest)
    if unfused:  # the mapping counted a residual operand this kernel does not read: its Add runs on its own
        feats = (feats[0], feats[1] - unfused, *feats[2:])
    if kind == "gemm" and feats[8] == 1:
        kind = "gemv"  # one row: a matrix-vector product, bound by streaming the weights (its own fit)
    last = (inside[-1].layer.node if inside else node).outputs[0]
    aliases = [v.name or "" for m in [row, *inside] for v in m.layer.node.outputs if v is not None]
    kernels.append(Kernel(row.name, kind, row.name, feats, [row.name, *(m.name for m in inside)], out=last.name or "", aliases=aliases))
    if nchwc_head:
        nchwc.add(last)
    for member in rest:
        standalone(member, row.name)


def _conv_add_fuses(node: ir.Node, add: ir.Node, inside: list[KernelRow]) -> bool:
    """Whether onnxruntime's ConvAddActivationFusion (CPU, default optimization level) runs this
    residual in the NCHW Conv before it, as a FusedConv reading the other operand (its Z input),
    with the activation that follows: an Add (never a Sum) of two 4-D tensors of one shape, after
    a Conv with a bias (its own, or the one folding a BatchNormalization or a constant Add gives
    it). NCHWc Convs fuse residuals by the NCHWc rules instead (in :func:`_head`)."""
    if node.op_type != "Conv" or add.op_type != "Add" or len(add.inputs) != 2:
        return False
    shapes = {static_shape(v) for v in add.inputs}
    if len(shapes) != 1 or None in shapes or len(next(iter(shapes))) != 4:
        return False
    has_bias = len(node.inputs) > 2 and node.inputs[2] is not None
    return has_bias or any(m.op in ("BatchNormalization", "Add") for m in inside)


def _unfused_residual_bytes(row: KernelRow, fused: list[KernelRow], rest: list[KernelRow]) -> int:
    """Bytes of the residual operands the mapping added to the head's input (mapping: a residual
    Add/Sum fused into the Conv before it) whose Add onnxruntime runs as a kernel of its own (an
    NCHW Conv's Sum, or a refused NCHWc join): that kernel reads them, this one does not. Left in
    the Conv's input bytes, ShuffleNet's 13 NCHW grouped convs before a residual Sum read twice
    their input and were priced 15-25% above the same convs without one (the input-bytes term of
    their fit)."""
    unfused, alone = 0, {id(m) for m in rest}
    for index, member in enumerate(fused):
        mnode = member.layer.node
        if id(member) in alone and len(mnode.inputs) == 2 and _is_residual(mnode):
            chain = chain_outputs(row, fused[:index])
            unfused += sum(value_bytes(v) for v in mnode.inputs if v not in chain)
    return unfused


def _is_residual(node: ir.Node) -> bool:
    """An Add/Sum of computed tensors only (no constant operand): a residual join."""
    return node.op_type in ("Add", "Sum") and all(v is not None and v.const_value is None for v in node.inputs)


def chain_outputs(row: KernelRow, inside: list[KernelRow]) -> set[ir.Value]:
    """The values a Conv head and the layers fused into it so far produce."""
    return {v for m in [row, *inside] for v in m.layer.node.outputs if v is not None}
