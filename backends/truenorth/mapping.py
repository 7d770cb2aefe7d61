"""Placement of a network on TrueNorth cores (256 axons x 256 neurons each).

Per weighted layer (Conv/Gemm/MatMul with constant weights) the blocks of
``legalize-core-ops`` (the same plan, :mod:`nncc.blocks`, so a legalized graph and the original
count the same); the other weighted ops of :mod:`nncc.ops` (ConvTranspose, Einsum, the integer
ops) have no core-op plan, and placing them is an error:

- Fully connected block (K_b <= 256 inputs, M_b outputs): ceil(dup * M_b / 256) cores per row.
- Conv block: TrueNorth has no weight sharing between cores, so every output position has its
  own neurons: neurons = C_out * H_out * W_out, fan-in per neuron = C_in * kh * kw. A core packs
  the neurons of a tile of t_h x t_w output positions and m output channels (q whole groups for
  grouped convs), which share input axons: axons = q * C_g * span(t_h) * span(t_w) <= 256 with
  span(t) = the distinct input rows t outputs read ((t - 1) * stride + kernel, dilation and
  non-overlapping strides counted exactly); neurons = q * m * t_h * t_w * dup <= 256. The tile,
  m and q minimizing the core count are searched (``pack_conv``).
- Fan-in split (a > 1 partial blocks for one output chunk) -- merge scheme: each partial
  neuron is doubled into a positive-part and a negative-part relay neuron (weights +W and -W on
  the same axons, threshold = the partial's scale, so the pair carries the signed partial sum as
  two rates: dup = 2); a merge neuron gets each pair on two axons (axon types +1 / -1), adds the
  layer's bias as leak and applies the threshold (the ReLU). A merge core thus serves
  floor(256 / 2a) outputs; a > 128 partials merge in a tree (``merge_cores``), one tick per level.
- Fan-out: a TrueNorth neuron targets exactly one axon (Merolla et al., Science 2014 [U]), so an
  input read by r > 1 cores (overlapping conv tiles, several output chunks, or both axons of a
  'sign-split' input) is copied by splitter neurons (weight 1, threshold 1: an exact relay, one
  tick): splitter cores = ceil(sum of r over inputs with r > 1 / 256). Inputs that come from
  outside the chip (the graph's inputs, host-side ops) are injected onto every axon directly.
- Pooling: each output neuron reads its window of one channel (max-pool runs as average or OR
  pooling, see simulate.py), packed like a grouped conv with one channel per group.
- Add / Sum of activations (residuals): merge neurons as above. Relu is the neuron's threshold,
  constant per-channel affine ops fold into weights and leak ("fused"); Split/Concat/Reshape
  and friends are routing ("wiring"). Anything else runs on the host: ``unsupported``.

Cores per copy are placed one layer after another; spatial copies repeat the whole placement.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import onnx_ir as ir

from nncc.analysis import layers as layer_table
from nncc.backends.base import Mapping
from nncc.blocks import BLOCK, BLOCKED_OPS, LAYER, MARK, Block, describe_weighted
from nncc.cost import Unsupported
from nncc.errors import NnccError
from nncc.irutils import static_shape
from nncc.ops import DEFAULT_DOMAINS, NO_OPS, RECURRENT_OPS, WEIGHTED_OPS
from nncc.weights import nonzero_count

from .packing import coverage, merge_cores, pack_conv

# Weighted ops (nncc.ops) split into core-ops by nncc.blocks' plans, as legalize-core-ops splits them.
WEIGHTED = BLOCKED_OPS  # what legalize-core-ops splits into core-op blocks
UNPLACEABLE = WEIGHTED_OPS - WEIGHTED
# The pool-class ops a neuron computes: average or OR over a window (LpPool and the reductions
# have no neuron model).
POOLS = frozenset({"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"})
# Routing between cores, no neurons: the no-op class, and the data ops that only select or
# reorder features (each input reaches at most one axon: no splitters).
WIRING = NO_OPS | {"Split", "Slice", "Concat", "Transpose"}
# The element-wise ops that are a per-channel scale or shift when at most one operand is an
# activation: they fold into the producing neurons' weights and leak.
AFFINE = frozenset({"Add", "Sub", "Mul", "Div", "BatchNormalization"})
# Recurrent layers are not placed: listed as unsupported (the host runs them), with this reason.
RECURRENT = ("recurrent layer: its hidden state carries from one time step to the next, a state across ticks "
             "that the feed-forward core-op mapping does not model; runs on the host")


@dataclasses.dataclass
class CoreRow:
    """One graph node on the chip (cores per copy)."""

    name: str
    op: str
    kind: str                 # core-op, merge, pool, add, wiring, fused
    layer: str                # the original layer (legalize-core-ops' nncc.layer) or the node itself
    cores: int = 0            # crossbar cores of the node's neurons (partials included)
    merge_cores: int = 0
    splitter_cores: int = 0
    neurons: int = 0
    synapses: int = 0         # connected synapses (non-zero weights) -> events = spikes x synapses
    fan_in: int = 0
    stage_ticks: int = 0      # pipeline stages the node adds (one tick each)
    macs: int = 0
    packing: dict[str, Any] = dataclasses.field(default_factory=dict)
    first_core: int = 0       # placement (copy 0)

    @property
    def total_cores(self) -> int:
        return self.cores + self.merge_cores + self.splitter_cores


@dataclasses.dataclass
class TrueNorthMapping(Mapping[CoreRow]):
    artifact_name = "core_placement.json"
    cores_per_copy: int = 0
    depth_ticks: int = 0
    weight_bytes: int = 0     # the model's weights (on the chip they live in the cores' synapse SRAM)
    config: Any = dataclasses.field(default=None, repr=False)
    # Measured mean input spike rate per layer (simulate.py); else config.spike_rate.
    input_rates: dict[str, float] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        c = self.config
        rows = []
        for row in self.layers:
            if not row.total_cores:
                continue
            last = row.first_core + row.total_cores - 1
            rows.append({"name": row.name, "layer": row.layer, "op": row.op, "kind": row.kind, "cores": row.cores,
                         "merge_cores": row.merge_cores, "splitter_cores": row.splitter_cores,
                         "core_range": [row.first_core, last], "chip_range": [row.first_core // c.cores_per_chip, last // c.cores_per_chip],
                         "neurons": row.neurons, "synapses": row.synapses, "packing": row.packing})
        copies = c.spatial_copies
        return {"target": "truenorth", "cores_per_copy": self.cores_per_copy, "copies": c.copies, "copy_mode": c.copy_mode,
                "copy_offsets": [k * self.cores_per_copy for k in range(copies)], "total_cores": self.cores_per_copy * copies,
                "cores_per_chip": c.cores_per_chip, "chips": -(-self.cores_per_copy * copies // c.cores_per_chip),
                "layers": rows, "unsupported": [u.to_json() for u in self.unsupported]}


# --- the walk over the graph -------------------------------------------------------------

class _Mapper:
    def __init__(self, model: ir.Model, config: Any):
        self.model, self.c = model, config
        self.rows: list[CoreRow] = []
        self.unsupported: list[Unsupported] = []
        self.replicas: dict[str, tuple[np.ndarray, bool]] = {}  # layer -> (reads per input feature, external input)
        self.first_row: dict[str, CoreRow] = {}
        self.row_of: dict[ir.Node, CoreRow] = {}

    def run(self) -> TrueNorthMapping:
        for layer in layer_table(self.model):
            row = self.place(layer)
            if row is not None:
                self.rows.append(row)
                self.first_row.setdefault(row.layer, row)
                self.row_of[layer.node] = row
        self.add_splitters()
        depth = self.pipeline_depth()
        offset = 0
        for row in self.rows:
            row.first_core, offset = offset, offset + row.total_cores
        weights = sum(v.const_value.nbytes for v in self.model.graph.initializers.values() if v.const_value is not None)
        mapping = TrueNorthMapping(layers=self.rows, unsupported=self.unsupported, cores_per_copy=offset, depth_ticks=depth,
                                   weight_bytes=int(weights), config=self.c)
        self.check_fit(mapping)  # the chip's capacity first: the limit a user meets first
        self.check_placeable()
        return mapping

    def check_placeable(self) -> None:
        """A network runs on TrueNorth only when every node has a form on its cores: otherwise one
        line names the first node that has none (unless ``host_fallback`` lets them run on a host)."""
        if not self.unsupported or self.c.host_fallback:
            return
        first = self.unsupported[0]
        ops = ", ".join(sorted({u.op for u in self.unsupported}))
        raise NnccError("truenorth", f"layer '{first.name}' ({first.op}) has no form on TrueNorth cores: {first.reason}; "
                                     f"{len(self.unsupported)} such node(s) ({ops}); --set host_fallback=true runs them "
                                     "on a host, uncosted")

    def place(self, layer) -> CoreRow | None:
        node, op = layer.node, layer.op
        label = node.metadata_props.get(LAYER, layer.name)
        if layer.domain not in DEFAULT_DOMAINS:
            self.unsupported.append(Unsupported(layer.name, f"{layer.domain}::{op}", "custom op: runs on the host"))
            return None
        if op in RECURRENT_OPS:
            self.unsupported.append(Unsupported(layer.name, op, RECURRENT))
            return None
        if op in WEIGHTED_OPS:
            return self.weighted(layer, label)
        mark = node.metadata_props.get(MARK)
        row = CoreRow(layer.name, op, "wiring", label, macs=layer.macs)
        if op in WIRING:
            return row
        if mark == "act-quant" or op == "Relu":
            row.kind = "fused"  # spike rates quantize activations; the threshold is the ReLU
            return row
        activations = [v for v in node.inputs if v is not None and v.const_value is None]
        out = static_shape(node.outputs[0]) if node.outputs else None
        if op in AFFINE | {"Sum"} and len(activations) <= 1:
            row.kind = "fused"  # per-channel scale/shift: folds into the producing neurons' weights and leak
            return row
        if op in ("Sum", "Add") and len(activations) >= 2 and out is not None:
            n = math.prod(out)
            cores, ticks, synapses = merge_cores(n, len(activations), False, self.c.axons_per_core, self.c.neurons_per_core)
            row.kind, row.merge_cores, row.stage_ticks, row.synapses, row.neurons = "merge" if mark == "reduce" else "add", cores, ticks, synapses, n
            row.fan_in = 2 * len(activations)
            return row
        if op in POOLS and out is not None and static_shape(node.inputs[0]) is not None:
            return self.pool(layer, row, out)
        self.unsupported.append(Unsupported(layer.name, op, "no TrueNorth neuron model for this op: runs on the host"))
        return None

    def weighted(self, layer, label: str) -> CoreRow:
        node, c = layer.node, self.c
        desc = "not a Conv/Gemm/MatMul" if layer.op in UNPLACEABLE else describe_weighted(node, c.inputs_per_core, c.neurons_per_core)
        if isinstance(desc, str):
            why = "; crossbar synapses are fixed at configuration time" if "constant" in desc else ""
            raise NnccError("truenorth", f"layer '{layer.name}' ({layer.op}) cannot be placed on TrueNorth cores: {desc}{why}")
        partial = node.metadata_props.get(MARK) == "partial"
        row = CoreRow(layer.name, layer.op, "core-op", label, fan_in=desc.fan_in, stage_ticks=1, macs=layer.macs)
        x, y = static_shape(node.inputs[0]), static_shape(node.outputs[0])
        own = Block.parse(node.metadata_props.get(BLOCK, ""))
        features, offset = self.layer_input(node, label, own, desc)
        merge_ticks = 0
        for group in desc.plan:
            dup = 2 if (partial or len(group) > 1) else 1
            n_group = 0
            for b in group:
                w = desc.weight[b.out0:b.out1, b.w_in[0]:b.w_in[1]] if layer.op == "Conv" else desc.weight[b.in0:b.in1, b.out0:b.out1]
                nnz = nonzero_count(w)
                if layer.op == "Conv":
                    n = self.conv_block(node, b, dup, x, y, features, offset, row)
                    row.synapses += nnz * math.prod(y[2:]) * y[0] * dup
                else:
                    rows = math.prod(x) // x[desc.axis]
                    per = -(-dup * (b.out1 - b.out0) // c.neurons_per_core)
                    row.cores += rows * per
                    features[offset + b.in0:offset + b.in1] += per * c.axons_per_input
                    n = rows * (b.out1 - b.out0)
                    row.synapses += nnz * rows * dup
                    row.packing.setdefault("cores_per_block", []).append(per)
                row.neurons += n * dup
                n_group = n
            if len(group) > 1:
                cores, ticks, synapses = merge_cores(n_group, len(group), partial, c.axons_per_core, c.neurons_per_core)
                row.merge_cores += cores
                row.synapses += synapses
                merge_ticks = max(merge_ticks, ticks)
        row.stage_ticks += merge_ticks
        row.packing["blocks"] = sum(len(g) for g in desc.plan)
        return row

    def layer_input(self, node: ir.Node, label: str, own: Block | None, desc) -> tuple[np.ndarray, int]:
        """The per-feature read counter of the layer this node belongs to, and this node's offset in it."""
        x = node.inputs[0]
        source = x
        producer = x.producer()
        if producer is not None and producer.metadata_props.get(MARK) == "split":  # legalize-core-ops' Split or Slice
            source = producer.inputs[0]
        shape = static_shape(source)
        if shape is None:
            raise NnccError("truenorth", f"layer '{label}': input shape unknown (give it with --input-shape)")
        if desc.node.op_type == "Conv":
            feat_shape = shape[1:]
        else:
            feat_shape = (shape[desc.axis],)
        if label not in self.replicas:
            self.replicas[label] = (np.zeros(feat_shape, np.int64), self.external(source))
        offset = own.in0 if (own is not None and source is not x) else 0
        return self.replicas[label][0], offset

    def external(self, value: ir.Value) -> bool:
        """Whether ``value`` reaches the chip from outside (graph input or host-side op), through wiring."""
        while True:
            producer = value.producer()
            if producer is None:
                return True
            if producer.op_type in WIRING or producer.metadata_props.get(MARK) == "act-quant":
                value = producer.inputs[0]
                continue
            return producer.op_type not in WEIGHTED | POOLS | {"Relu", "Sum", "Add"} | AFFINE

    def conv_block(self, node, b: Block, dup: int, x, y, features: np.ndarray, offset: int, row: CoreRow) -> int:
        c = self.c
        w = node.inputs[1].shape
        kernel = tuple(int(k) for k in w[2:])
        nd = len(kernel)
        strides = tuple(node.attributes.get_ints("strides", [1] * nd))
        dil = tuple(node.attributes.get_ints("dilations", [1] * nd))
        pads = _pads(node, x[2:], y[2:], kernel, strides, dil)
        out = tuple(y[2:])
        cg = b.w_in[1] - b.w_in[0]
        mg = (b.out1 - b.out0) // b.groups
        where = () if self.replicas[row.layer][1] else (tuple(x[2:]), tuple(pads))
        pack = pack_conv(cg, mg, b.groups, kernel, strides, dil, out, dup, c.axons_per_core, c.neurons_per_core, c.axons_per_input, *where)
        if pack is None:
            raise NnccError("truenorth", f"layer '{row.layer}' (Conv): one output neuron reads {cg * math.prod(kernel)} inputs "
                                         f"({cg} channels x {'x'.join(map(str, kernel))}), more than a core's {c.inputs_per_core}")
        row.cores += pack["cores"] * y[0]
        row.packing.setdefault("tiles", []).append(pack)
        cov = np.ones((), np.int64)
        for i in range(nd):
            cov = np.multiply.outer(cov, coverage(pack["tile"][i], out[i], x[2 + i], kernel[i], strides[i], dil[i], pads[i]))
        features[offset + b.in0:offset + b.in1] += cov * (-(-mg // pack["channels_per_core"])) * c.axons_per_input
        return (b.out1 - b.out0) * math.prod(out) * y[0]

    def pool(self, layer, row: CoreRow, out: tuple) -> CoreRow:
        node, c = layer.node, self.c
        x = static_shape(node.inputs[0])
        if layer.op.startswith("Global"):
            kernel, strides, dil = tuple(x[2:]), (1,) * len(x[2:]), (1,) * len(x[2:])
        else:
            kernel = tuple(node.attributes.get_ints("kernel_shape", []))
            strides = tuple(node.attributes.get_ints("strides", [1] * len(kernel)))
            dil = tuple(node.attributes.get_ints("dilations", [1] * len(kernel)))
        n = math.prod(out)
        window = math.prod(kernel)
        row.kind, row.neurons, row.fan_in, row.stage_ticks = "pool", n, window, 1
        row.synapses = n * window
        a = -(-window * c.axons_per_input // c.axons_per_core)
        if a > 1:  # a window wider than a core: partial sums per output, merged
            row.cores = n * a
            merged, ticks, synapses = merge_cores(n, a, False, c.axons_per_core, c.neurons_per_core)
            row.merge_cores, row.stage_ticks, row.synapses = merged, 1 + ticks, row.synapses + synapses
            return row
        external = self.external(node.inputs[0])
        pads = [0] * len(kernel) if layer.op.startswith("Global") else _pads(node, x[2:], out[2:], kernel, strides, dil)
        where = () if external else (tuple(x[2:]), tuple(pads))
        pack = pack_conv(1, 1, x[1], kernel, strides, dil, tuple(out[2:]), 1, c.axons_per_core, c.neurons_per_core, c.axons_per_input, *where)
        row.cores = pack["cores"] * x[0]
        row.packing = pack
        cov = np.ones((), np.int64)
        for i in range(len(kernel)):
            cov = np.multiply.outer(cov, coverage(pack["tile"][i], out[2 + i], x[2 + i], kernel[i], strides[i], dil[i], pads[i]))
        reads = np.broadcast_to(cov * c.axons_per_input, (x[1],) + cov.shape).copy()
        self.replicas[row.layer] = (reads, external)
        return row

    def add_splitters(self) -> None:
        for label, (reads, external) in self.replicas.items():
            if external:
                continue
            copies = int(reads[reads > 1].sum())
            if copies:
                row = self.first_row[label]
                row.splitter_cores = -(-copies // self.c.neurons_per_core)
                row.synapses += copies
                row.stage_ticks += 1
                row.packing["splitter_neurons"] = copies

    def pipeline_depth(self) -> int:
        """Longest path in ticks: each placed node adds its stages after its latest input."""
        ready: dict[ir.Value, int] = {}
        depth = 0
        for node in self.model.graph:
            start = max((ready.get(v, 0) for v in node.inputs if v is not None), default=0)
            row = self.row_of.get(node)
            end = start + (row.stage_ticks if row is not None else 0)
            for v in node.outputs:
                ready[v] = end
            depth = max(depth, end)
        return depth

    def check_fit(self, mapping: TrueNorthMapping) -> None:
        c = self.c
        total = mapping.cores_per_copy * c.spatial_copies
        if total <= c.max_cores:
            return
        running, per_layer = 0, {}
        for row in self.rows:
            per_layer[row.layer] = per_layer.get(row.layer, 0) + row.total_cores * c.spatial_copies
            running += row.total_cores * c.spatial_copies
            if running > c.max_cores:
                copies = f"{c.copies} {c.copy_mode} cop{'y' if c.copies == 1 else 'ies'}"
                raise NnccError("truenorth", f"does not fit: layer '{row.layer}' needs {per_layer[row.layer]:,} cores "
                                             f"({running:,} with the layers before it, {total:,} for the whole model, {copies}); "
                                             f"{c.max_chips} chip(s) x {c.cores_per_chip} cores = {c.max_cores:,} "
                                             f"(set max_chips={-(-total // c.cores_per_chip)})")


def _pads(node: ir.Node, inp, out, kernel, strides, dil) -> list[int]:
    """Leading pad per spatial axis (explicit pads, or what auto_pad implies)."""
    pads = node.attributes.get_ints("pads", None)
    if pads:
        return list(pads[:len(kernel)])
    auto = node.attributes.get_string("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        total = [max(0, (o - 1) * s + (k - 1) * d + 1 - i) for i, o, k, s, d in zip(inp, out, kernel, strides, dil)]
        return [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in total]
    return [0] * len(kernel)


def map_model(model: ir.Model, config: Any) -> TrueNorthMapping:
    return _Mapper(model, config).run()
