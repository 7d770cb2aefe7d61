"""The layer DAG HyPar partitions, built from the (shape-inferred) model.

Nodes are the weighted layers (Conv/ConvTranspose/Gemm/MatMul with a constant weight, read
through the layer view's ``weight`` and its layout; LSTM/GRU/RNN with their W and R: the weight
is W + R, model parallelism splits the reduction I + H of [W R]).
Non-weighted ops (ReLU, pooling, BatchNorm, Add, Reshape...) carry no parallelism choice of
their own: they run on the accelerators with the partition of the weighted layer they fold
into, and an edge u -> v joins two weighted layers when v reads u's output through any
chain of non-weighted ops. HyPar's dynamic programming runs over the weighted layers in
topological order (a chain); ``chain_edges`` are the DAG edges between consecutive layers
of that order, ``skip_edges`` the rest (residual shortcuts, branch joins), see partition.py.

The integer forms of pre-quantized models (ConvInteger, MatMulInteger, QLinearConv,
QLinearMatMul) and com.microsoft's DynamicQuantizeLSTM (an LSTM with int8 W [dirs, I, 4H] and
R [dirs, H, 4H]) are split like their float forms; a layer's ``data_bits`` is the width its
maps and errors travel at: the weight's integer width for those, 16 for a float16 layer (weight
or activation of dtype float16), else the config's ``data_bits`` (0 in the spec).
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import onnx_ir as ir
from nncc.analysis import Layer, recurrence
from nncc.irutils import static_shape
from nncc.ops import CONTRIB_RECURRENT, INTEGER_OPS, NO_OPS, RECURRENT_OPS
from nncc.weights import Weight
from nncc.workload import model_batch

# The weighted ops HyPar splits by batch (dp) or input channels (mp), integer forms included
# (their maps travel at their integer width, see ``data_bits``).
PARTITIONED_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"}) | RECURRENT_OPS | INTEGER_OPS
CONV_OPS = frozenset({"Conv", "ConvTranspose", "ConvInteger", "QLinearConv"})


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """Per-sample sizes of one weighted layer, in elements (the communication model's A(.))."""

    name: str
    op: str
    macs: float          # forward MACs per sample
    in_elems: float      # A(F_in) per sample (= A(E_in), the error has the input's shape)
    out_elems: float     # A(F_out) per sample
    weight_elems: float  # A(W) = A(dW) = Cin * Cout * k^2 (per group for grouped convs)
    cin: int             # the dimension model parallelism splits (input channels / contraction)
    data_bits: int = 0   # the width of its maps and errors when the model fixes one (integer, float16); 0: the config's


class DiGraph:
    """A directed graph: nodes and edges in the order they were added (the little of networkx's
    DiGraph the partition reads; importing networkx took 0.15-0.3 s of each hypar compile)."""

    def __init__(self) -> None:
        self._succ: dict[str, dict[str, None]] = {}
        self._pred: dict[str, dict[str, None]] = {}

    def add_node(self, node: str) -> None:
        self._succ.setdefault(node, {})
        self._pred.setdefault(node, {})

    def add_nodes_from(self, nodes) -> None:
        for node in nodes:
            self.add_node(node)

    def add_edge(self, u: str, v: str) -> None:
        self.add_node(u)
        self.add_node(v)
        self._succ[u][v] = None
        self._pred[v][u] = None

    def has_edge(self, u: str, v: str) -> bool:
        return v in self._succ.get(u, {})

    def predecessors(self, node: str):
        return iter(self._pred[node])

    def successors(self, node: str):
        return iter(self._succ[node])

    @property
    def nodes(self) -> list[str]:
        return list(self._succ)

    @property
    def edges(self) -> list[tuple[str, str]]:
        return [(u, v) for u, succ in self._succ.items() for v in succ]


@dataclasses.dataclass
class LayerGraph:
    specs: list[LayerSpec]                 # weighted layers, topological order
    dag: DiGraph                           # weighted layers and their data edges
    folded: dict[str, str | None]          # non-weighted node -> weighted layer it folds into
    batch: int                             # the model's own batch (sizes above are divided by it)

    @property
    def chain_edges(self) -> set[tuple[str, str]]:
        names = [s.name for s in self.specs]
        return {(u, v) for u, v in itertools.pairwise(names) if self.dag.has_edge(u, v)}

    @property
    def skip_edges(self) -> set[tuple[str, str]]:
        return set(self.dag.edges) - self.chain_edges


def partitioned_weight(layer: Layer) -> Weight | None:
    """The weight of a layer HyPar partitions; None for a product of two activations and for ops
    outside :data:`PARTITIONED_OPS`."""
    return layer.weight if layer.op in PARTITIONED_OPS else None


def data_bits(layer: Layer) -> int:
    """The layer's own data width: its weight's integer width (integer ops, DynamicQuantizeLSTM),
    16 for float16 tensors, else 0 (the config's)."""
    node = layer.node
    if (layer.domain, layer.op) in CONTRIB_RECURRENT:
        dtype = node.inputs[1].dtype
        return dtype.bitwidth if dtype is not None and dtype.is_integer() else 0
    weight = layer.weight
    if weight is None:
        return 0
    if weight.integer_bits is not None and layer.op in INTEGER_OPS:
        return weight.integer_bits
    act = node.inputs[weight.layout.activation_index]
    if ir.DataType.FLOAT16 in (weight.value.dtype, act.dtype if act is not None else None):
        return 16
    return 0


def _contrib_spec(layer: Layer, batch: int) -> LayerSpec | None:
    """DynamicQuantizeLSTM: as an LSTM (W + R, mp splits the reduction I + H)."""
    rec = recurrence(layer.node)
    shapes = [static_shape(v) if v is not None else None for v in layer.node.inputs[:3]]
    if rec is None or layer.macs <= 0 or any(s is None for s in shapes):
        return None
    x, w, r = shapes
    return LayerSpec(layer.name, layer.op, layer.macs / batch, math.prod(x) / batch, rec.hidden_elements / batch,
                     float(math.prod(w) + math.prod(r)), int(rec.reduction), data_bits(layer))


def _spec(layer: Layer, batch: int) -> LayerSpec | None:
    if (layer.domain, layer.op) in CONTRIB_RECURRENT:
        return _contrib_spec(layer, batch)
    weight = partitioned_weight(layer)
    if weight is None or layer.macs <= 0:
        return None
    node = layer.node
    x, w = static_shape(node.inputs[weight.layout.activation_index]), weight.shape
    # A recurrent layer's output is its hidden states, counted from X (the graph may omit Y).
    rec = recurrence(node) if weight.recurrence is not None else None
    y_elems = rec.hidden_elements if rec is not None else math.prod(static_shape(node.outputs[0]) or (0,)) or None
    if x is None or w is None or y_elems is None:
        return None
    # The dimension mp splits: a convolution's input channels, else the weight's reduction axis.
    is_conv = layer.op in CONV_OPS
    if weight.recurrence is not None:  # a recurrent layer: W + R, the reduction of [W R] is I + H
        elems, cin = weight.elements, weight.fan_in
        if elems is None or cin is None:
            return None
        return LayerSpec(layer.name, layer.op, layer.macs / batch, math.prod(x) / batch, y_elems / batch,
                         float(elems), int(cin), data_bits(layer))
    cin = x[1] if is_conv else w[weight.layout.in_axis(len(w))]
    return LayerSpec(layer.name, layer.op, layer.macs / batch, math.prod(x) / batch, y_elems / batch,
                     float(math.prod(w)), int(cin), data_bits(layer))


def build(model: ir.Model, rows: list[Layer]) -> LayerGraph:
    """The weighted-layer DAG of ``rows`` (``analysis.layers(model)``, topological order)."""
    batch = model_batch(model)
    full = DiGraph()
    by_node = {id(r.node): r for r in rows}
    specs: dict[str, LayerSpec] = {}
    for row in rows:
        full.add_node(row.name)
        spec = _spec(row, batch)
        if spec is not None:
            specs[row.name] = spec
        for value in row.node.inputs:
            producer = value.producer() if value is not None else None
            if producer is not None and id(producer) in by_node:
                full.add_edge(by_node[id(producer)].name, row.name)
    dag = DiGraph()
    dag.add_nodes_from(specs)
    for name in specs:
        for source in _weighted_sources(full, name, specs):
            dag.add_edge(source, name)
    folded = {r.name: _fold_target(full, r.name, specs) for r in rows if r.name not in specs}
    return LayerGraph([specs[r.name] for r in rows if r.name in specs], dag, folded, batch)


def _weighted_sources(full: DiGraph, name: str, weighted: dict) -> set[str]:
    """Weighted layers whose output reaches ``name`` through non-weighted ops only."""
    found, stack, seen = set(), list(full.predecessors(name)), set()
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if node in weighted:
            found.add(node)
        else:
            stack.extend(full.predecessors(node))
    return found


def _fold_target(full: DiGraph, name: str, weighted: dict) -> str | None:
    """The weighted layer a non-weighted op follows: its nearest weighted producer, else consumer."""
    for walk in (full.predecessors, full.successors):
        frontier, seen = [name], {name}
        while frontier:
            hits = sorted(n for n in frontier if n in weighted)
            if hits:
                return hits[0]
            frontier = [m for n in frontier for m in walk(n) if m not in seen and not seen.add(m)]
    return None


def is_free(layer: Layer) -> bool:
    """Ops that move no data and do no arithmetic (a zero cost that is a fact, not a gap)."""
    return layer.op in NO_OPS
