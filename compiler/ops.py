"""The op-class table: the one place that says what kind of work an ONNX op does.

Every pass and every target sorts nodes by these classes; a target keeps only its *cost* per
class (and per-op refinements where one op of a class costs more than the others), never its
own list of which ops exist. A new op kind is added here once and every target sees it.

Classes:
- ``weighted``: a dot-product core (multiply-accumulates); its constant operand, when it has
  one, is a weight whose layout :mod:`nncc.weights` describes. Integer forms of pre-quantized
  models (``QLinearConv``, ``ConvInteger``, ...) belong here too, and so do the recurrent
  layers (``LSTM``, ``GRU``, ``RNN``: per time step, gate GEMMs over an input weight W and a
  recurrence weight R, then element-wise gate work; :data:`RECURRENT_GATES`).
- ``elementwise``: simple per-element arithmetic, compares, logic, normalizations, casts.
  ``DynamicQuantizeLinear`` (dynamically quantized models) is counted here too: a min/max
  reduction over its input plus a scale, round and saturate per element, about one op per element.
- ``transcendental``: per-element functions a processor evaluates by series or table
  (exp, tanh, erf, sqrt, ...), several simple-op equivalents each.
- ``pool``: windows and reductions; their work scales with the *input* elements.
- ``data``: copies, gathers, layout changes: bytes moved, no arithmetic. Sequence ops are here
  (torch's exporter writes a Python list appended in a loop as SequenceInsert, then
  ConcatFromSequence): each copies the tensors it takes in or gives out.
- ``no-op``: nothing moves and nothing is computed once shapes are static (metadata, aliases).

Ops not in the table (control flow, custom domains, unknown ops) have no class: a target
lists them as unsupported, never costs them as zero.
"""

from __future__ import annotations

from typing import Literal

OpClass = Literal["weighted", "elementwise", "transcendental", "pool", "data", "no-op"]

_TABLE: dict[OpClass, str] = {
    "weighted": """Conv ConvTranspose Gemm MatMul Einsum QLinearConv ConvInteger QLinearMatMul MatMulInteger
        LSTM GRU RNN""",
    "elementwise": """Relu Add Sub Mul Div Sum Max Min Mean Clip LeakyRelu PRelu Neg Abs Floor Ceil Round Sign Where
        Equal Less Greater LessOrEqual GreaterOrEqual Not And Or Xor Cast CastLike HardSigmoid HardSwish Mod IsNaN IsInf
        BitShift ThresholdedRelu Shrink QuantizeLinear DequantizeLinear DynamicQuantizeLinear BatchNormalization InstanceNormalization
        LayerNormalization LRN""",
    "transcendental": """Sigmoid Tanh Exp Log Erf Softplus Softsign Elu Selu Celu Mish Gelu Softmax LogSoftmax Sqrt
        Reciprocal Pow Sin Cos Tan Asin Acos Atan Sinh Cosh Asinh Acosh Atanh""",
    "pool": """MaxPool AveragePool LpPool GlobalAveragePool GlobalMaxPool GlobalLpPool ReduceMean ReduceSum ReduceMax
        ReduceMin ReduceProd ReduceL1 ReduceL2 ReduceSumSquare ReduceLogSum ReduceLogSumExp ArgMax ArgMin TopK CumSum""",
    "data": """Concat Split Slice Transpose Gather GatherElements GatherND ScatterND ScatterElements Pad Tile Expand Resize
        Upsample DepthToSpace SpaceToDepth ConstantOfShape Range OneHot ReverseSequence Trilu Compress NonZero
        SequenceConstruct SequenceInsert SequenceAt ConcatFromSequence SplitToSequence""",
    "no-op": """Identity Dropout Reshape Flatten Squeeze Unsqueeze Shape Constant Size EyeLike Optional OptionalGetElement
        SequenceEmpty SequenceLength SequenceErase""",
}

OP_CLASS: dict[str, OpClass] = {op: cls for cls, ops in _TABLE.items() for op in ops.split()}

WEIGHTED_OPS = frozenset(op for op, cls in OP_CLASS.items() if cls == "weighted")
ELEMENTWISE_OPS = frozenset(op for op, cls in OP_CLASS.items() if cls == "elementwise")
TRANSCENDENTAL_OPS = frozenset(op for op, cls in OP_CLASS.items() if cls == "transcendental")
POOL_OPS = frozenset(op for op, cls in OP_CLASS.items() if cls == "pool")
DATA_OPS = frozenset(op for op, cls in OP_CLASS.items() if cls == "data")
NO_OPS = frozenset(op for op, cls in OP_CLASS.items() if cls == "no-op")
# The integer forms of weighted ops that pre-quantized models use (operands are 8-bit integers).
INTEGER_OPS = frozenset({"QLinearConv", "ConvInteger", "QLinearMatMul", "MatMulInteger"})
# The recurrent weighted ops and their gates per hidden unit: W [dirs, gates*H, I],
# R [dirs, gates*H, H], B [dirs, 2*gates*H] (ONNX LSTM: i o f c; GRU: z r h; RNN: one).
RECURRENT_GATES: dict[str, int] = {"LSTM": 4, "GRU": 3, "RNN": 1}
RECURRENT_OPS = frozenset(RECURRENT_GATES)
# Recurrent ops of other domains whose work the layer view counts (MACs, gate ops) though no
# target costs them (no op class: a target lists them as unsupported, with their MACs), and the
# default-domain op each computes. DynamicQuantizeLSTM holds W [dirs, I, 4H] and R [dirs, H, 4H]
# as int8 with per-direction scales (onnxruntime's contrib op).
CONTRIB_RECURRENT: dict[tuple[str, str], str] = {("com.microsoft", "DynamicQuantizeLSTM"): "LSTM"}

# Not a class but a runtime fact two targets share: element-wise ops a runtime runs inside the
# producing Conv/Gemm kernel (epilogue fusion, as onnxruntime, TFLite and cuDNN do).
EPILOGUE_OPS = frozenset({"BatchNormalization", "Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid",
                          "HardSwish", "Add", "Sub", "Mul", "Div"})
# Activation functions (element-wise or transcendental) that hardware may or may not provide.
ACTIVATIONS = frozenset({"Relu", "LeakyRelu", "PRelu", "Clip", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu",
                         "Selu", "Celu", "Gelu", "Softplus", "Softsign", "Mish", "ThresholdedRelu", "Erf", "Exp",
                         "Softmax", "LogSoftmax"})

DEFAULT_DOMAINS = ("", "ai.onnx")

# Ops onnxruntime registers in the default domain itself, and the opset from which ONNX defines
# them (None: never). Below it a node of that name is onnxruntime's own (its transformer
# optimizer writes LayerNormalization into opset-14 models): the ONNX checker and shape
# inference know no schema for it, nncc.contrib decomposes it for costing.
ORT_DEFAULT_DOMAIN: dict[str, int | None] = {"SimplifiedLayerNormalization": None, "LayerNormalization": 17}


def is_ort_default_domain_op(op_type: str, domain: str, opset: int) -> bool:
    """A default-domain node that only onnxruntime defines at this opset (see ORT_DEFAULT_DOMAIN)."""
    if domain not in DEFAULT_DOMAINS or op_type not in ORT_DEFAULT_DOMAIN:
        return False
    since = ORT_DEFAULT_DOMAIN[op_type]
    return since is None or opset < since


def op_class(op_type: str, domain: str = "") -> OpClass | None:
    """The class of an op of the default ONNX domain; None for custom domains and unknown ops."""
    if domain not in DEFAULT_DOMAINS:
        return None
    return OP_CLASS.get(op_type)


def is_recurrent(op_type: str, domain: str = "") -> bool:
    """An LSTM/GRU/RNN, or a contrib form the layer view counts as one (DynamicQuantizeLSTM)."""
    return (domain in DEFAULT_DOMAINS and op_type in RECURRENT_OPS) or (domain, op_type) in CONTRIB_RECURRENT


def standard_op(op_type: str, domain: str = "") -> str | None:
    """The default-domain op a node is costed as: itself, the standard form of a contrib op the
    layer view knows (DynamicQuantizeLSTM -> LSTM), or None for other custom-domain ops."""
    return op_type if domain in DEFAULT_DOMAINS else CONTRIB_RECURRENT.get((domain, op_type))


def is_weighted(op_type: str, domain: str = "") -> bool:
    return op_class(op_type, domain) == "weighted"
