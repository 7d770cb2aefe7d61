"""Low-rank factorization of Gemm, MatMul and Conv weights by truncated SVD.

* Gemm / MatMul with a constant 2-D weight W [K, N] (as multiplied) becomes two products
  through W ~= L R, L [K, r], R [r, N]; Gemm keeps transA/transB/alpha/beta/C exactly
  (first Gemm: A' L, second: alpha (H R) + beta C).
* Conv (scheme ``channel``): W [N, C, kh, kw] reshaped to [N, C kh kw] gives a k x k conv
  C -> r with the original stride/pads/dilations and a 1 x 1 conv r -> N with the bias.
* Conv (scheme ``spatial``): W reshaped to [C kh, N kw] gives a kh x 1 conv C -> r (row
  stride/pads/dilation) and a 1 x kw conv r -> N (column stride/pads/dilation, bias).
  Both schemes are those of TRP (Xu et al., "TRP: Trained Rank Pruning", IJCAI 2020),
  the spatial one after Jaderberg et al. (BMVC 2014).

Rank: ``rank_ratio`` (rank / full rank, full rank = min of the matrix dims) when given,
else the smallest rank keeping ``energy`` of sum s_i^2. The created nodes carry
``metadata_props["nncc.factorized"] = "1"`` and are never factorized again.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import onnx_ir as ir

from nncc.analysis import node_macs
from nncc.errors import NnccError
from nncc.irutils import add_initializer, const_array, drop_unused_initializers, replace_node_output, static_shape
from nncc.pass_base import NnccPass
from nncc.passes.svd import Truncation, truncate
from nncc.passes.weighted import skip_record, weighted_nodes
from nncc.weights import Weight, bias_of, layer_name

MARK = "nncc.factorized"
_SUFFIXES = ("_lowrank_a", "_lowrank_b")


@dataclasses.dataclass
class _Plan:
    """How one node is rewritten: the matrix to factorize and how to turn factors into nodes."""

    matrix: np.ndarray           # 2-D, the weight as the decomposition sees it
    scheme: str                  # "matmul", "channel" or "spatial"
    weight: Weight               # the node's weight and its layout
    note: str = ""               # e.g. why the scheme fell back


@dataclasses.dataclass
class FactorizeLowRank(NnccPass):
    """Split Gemm/MatMul/Conv weights into two low-rank factors (truncated SVD).

    Parameters:
      scheme: ``channel`` (k x k conv to r channels, then 1 x 1) or ``spatial`` (kh x 1 then
        1 x kw); 1 x 1 and non-2-D convs use ``channel`` under ``spatial`` (recorded).
      rank_ratio: rank / full rank; wins over ``energy`` when given. 1.0 factorizes at full
        rank even where that costs parameters (so full rank can be checked numerically).
      energy: keep the smallest rank r with sum_{i<=r} s_i^2 >= energy * sum s_i^2.
      min_params_saving: skip a layer whose factorized form has no fewer parameters or
        MACs than the original (not applied at rank_ratio=1.0).
      randomized: ``auto`` uses the randomized SVD (Halko et al., oversampling 10, 2 power
        steps) when min(dims) > 512 and the rank is under a quarter of it; ``always``/``never``.
      seed: seed of the randomized SVD (results are deterministic).
    """

    name = "factorize"
    target_independent = True
    summary = "low-rank factorization of Gemm/MatMul/Conv weights by truncated SVD (TRP channel or spatial schemes)"

    scheme: Literal["channel", "spatial"] = "channel"
    rank_ratio: float | None = None
    energy: float | None = 0.9
    min_params_saving: bool = True
    randomized: Literal["auto", "always", "never"] = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rank_ratio is not None and not 0 < self.rank_ratio <= 1:
            raise NnccError("factorize", f"rank_ratio={self.rank_ratio} must be in (0, 1]")
        if self.rank_ratio is None and self.energy is None:
            raise NnccError("factorize", "give rank_ratio or energy")
        if self.rank_ratio is None and not 0 < self.energy <= 1:
            raise NnccError("factorize", f"energy={self.energy} must be in (0, 1]")
        if self.scheme not in ("channel", "spatial") or self.randomized not in ("auto", "always", "never"):
            raise NnccError("factorize", f"unknown scheme '{self.scheme}' or randomized '{self.randomized}'")

    # ------------------------------------------------------------------ planning

    def plans(self, model: ir.Model) -> tuple[list[tuple[ir.Node, str, _Plan | str]], int]:
        """(node, label, plan or why it is skipped) for every weighted node not yet factorized,
        and how many nodes an earlier run already produced. Shared with rank-clip, which plans
        the same way and only chooses the rank differently."""
        self._opset = model.opset_imports.get("", 1)
        found, already = [], 0
        for node, label, weight in weighted_nodes(model.graph):
            if node.metadata_props.get(MARK) == "1" or label.endswith(_SUFFIXES):
                already += 1
                continue
            found.append((node, label, weight if isinstance(weight, str) else self.plan(node, weight)))
        return found, already

    def plan(self, node: ir.Node, weight: Weight) -> _Plan | str:
        """What to factorize in ``node``, or why it is skipped."""
        layout = weight.layout
        if weight.integer_bits is not None:
            return "integer weights (a pre-quantized op) are not factorized"
        if layout.kind == "conv_transpose":
            return "ConvTranspose is not factorized (not implemented)"
        if layout.spatial_axes(len(weight.shape)):  # kernel axes: a convolution
            return self._conv_plan(weight)
        if len(weight.shape) != 2:
            return f"constant operand is {len(weight.shape)}-D (batched weights are not factorized)"
        if const_array(node.inputs[1 - layout.index]) is not None:
            return "both operands are constant (fold constants instead)"
        if node.op_type == "Gemm" and self._opset < 11:
            return f"opset {self._opset}: the first Gemm would need a C input (optional from opset 11)"
        w = const_array(weight.value)
        # The weight as the product multiplies it: W [M, K] left of W @ X, [K, N] right of X @ W
        # (Gemm: B' whatever transB).
        matrix = layout.gemm_view(w) if layout.index == 0 else layout.matrices(w)[0]
        return _Plan(matrix, "matmul", weight)

    def _conv_plan(self, weight: Weight) -> _Plan | str:
        layout, shape = weight.layout, weight.shape
        n, c = weight.outputs, shape[layout.in_axis(len(shape))]
        kernel = tuple(shape[axis] for axis in layout.spatial_axes(len(shape)))
        if layout.groups != 1:
            kind = "depthwise" if layout.groups == n and c == 1 else "grouped"
            return f"{kind} convolution (group={layout.groups}): a shared rank-r basis would mix groups"
        w = const_array(weight.value)
        channel = layout.gemm_view(w)  # [N, C kh kw]
        if self.scheme == "spatial":
            if len(kernel) != 2:
                return _Plan(channel, "channel", weight, f"{len(kernel)}-D kernel: spatial needs 2-D, used channel")
            if kernel == (1, 1):
                return _Plan(channel, "channel", weight, "1x1 kernel: spatial falls back to channel")
            kh, kw = kernel
            # M[(c, i), (n, j)] = W[n, c, i, j], so M ~= A B gives W[n,c,i,j] ~= sum_k B[k,(n,j)] A[(c,i),k].
            return _Plan(w.transpose(1, 2, 0, 3).reshape(c * kh, n * kw), "spatial", weight)
        return _Plan(channel, "channel", weight)

    def _rank_rule(self) -> str:
        return f"rank_ratio={self.rank_ratio}" if self.rank_ratio is not None else f"energy={self.energy}"

    # ------------------------------------------------------------------ rewriting

    def apply(self, model: ir.Model) -> bool:
        graph = model.graph
        done: list[dict] = []
        skipped: list[dict] = []
        forced = self.rank_ratio is not None and self.rank_ratio >= 1.0
        nodes, already = self.plans(model)
        for node, label, plan in nodes:
            if isinstance(plan, str):
                skipped.append(skip_record(node, label, plan))
                continue
            weight = plan.matrix
            if not np.issubdtype(weight.dtype, np.floating):
                skipped.append(skip_record(node, label, f"weight dtype {weight.dtype} is not floating point"))
                continue
            if not np.all(np.isfinite(weight)):
                skipped.append(skip_record(node, label, "weight holds inf or NaN"))
                continue
            if not np.any(weight):
                skipped.append(skip_record(node, label, "weight is all zero"))
                continue
            trunc = truncate(weight, self.rank_ratio, self.energy, self.randomized, self.seed)
            params_before, params_after = weight.size, trunc.rank * sum(weight.shape)
            macs_before = node_macs(node) or None
            macs_after = self._macs_after(node, plan, trunc.rank, macs_before)
            record = {"name": label, "op": node.op_type, "scheme": plan.scheme, "matrix_shape": list(weight.shape),
                      "rank": trunc.rank, "full_rank": trunc.full_rank, "svd": trunc.method,
                      "spectral_error": trunc.spectral_error, "frobenius_error": trunc.frobenius_error,
                      "relative_frobenius_error": trunc.frobenius_error / trunc.norm, "energy_kept": trunc.energy_kept,
                      "error_method": trunc.error_method, "params_before": int(params_before), "params_after": int(params_after),
                      "macs_before": macs_before, "macs_after": macs_after}
            if plan.note:
                record["note"] = plan.note
            no_saving = params_after >= params_before or (macs_after is not None and macs_before is not None and macs_after >= macs_before)
            if self.min_params_saving and no_saving and not forced:
                skipped.append(skip_record(node, label, f"no saving at rank {trunc.rank}: params {params_before} -> "
                                           f"{params_after}, MACs {macs_before} -> {macs_after}",
                                           rank=trunc.rank, full_rank=trunc.full_rank))
                continue
            self.rewrite(graph, node, plan, trunc, weight.dtype)
            done.append(record)
        if done:
            drop_unused_initializers(graph)
        self.stats.update({
            "scheme": self.scheme, "rank_rule": self._rank_rule(), "factorized": len(done),
            "already_factorized_nodes": already,
            "params_before": sum(r["params_before"] for r in done), "params_after": sum(r["params_after"] for r in done),
            "macs_before": sum(r["macs_before"] or 0 for r in done), "macs_after": sum(r["macs_after"] or 0 for r in done),
            "layers": done, "skipped": skipped,
        })
        return bool(done)

    @staticmethod
    def _macs_after(node: ir.Node, plan: _Plan, r: int, macs_before: int | None) -> int | None:
        if macs_before is None:
            return None
        m, n = plan.matrix.shape
        if plan.scheme in ("matmul", "channel"):
            # Both factors run at the original's output positions (rows of the product,
            # pixels of the conv), so the MACs scale like the parameters.
            positions = macs_before // (m * n)
            return positions * r * (m + n)
        x, y = static_shape(node.inputs[0]), static_shape(node.outputs[0])
        if x is None or y is None:
            return None
        batch, c_in, _, width_in = x
        _, n_out, h_out, w_out = y
        kh, kw = m // c_in, n // n_out
        # The kh x 1 conv strides rows only: it runs on every input column.
        return batch * h_out * width_in * r * c_in * kh + batch * h_out * w_out * n_out * r * kw

    def rewrite(self, graph: ir.Graph, node: ir.Node, plan: _Plan, trunc: Truncation, dtype: np.dtype) -> None:
        left, right = trunc.left.astype(dtype), trunc.right.astype(dtype)
        base = layer_name(node)
        build = {"Gemm": self._gemm, "MatMul": self._matmul, "Conv": self._conv}[node.op_type]
        first, second = build(graph, node, plan, left, right, base)
        first.name, second.name = base + _SUFFIXES[0], base + _SUFFIXES[1]
        for created in (first, second):
            created.metadata_props[MARK] = "1"
        graph.insert_before(node, [first, second])
        old, new = node.outputs[0], second.outputs[0]
        new.shape, new.type = old.shape, old.type
        replace_node_output(graph, node, old, new, "_unfactorized")

    @staticmethod
    def _hidden(like: ir.Value, shape: list | None, name: str) -> ir.Value:
        return ir.Value(name=name, shape=ir.Shape(shape) if shape is not None else None, type=like.type)

    def _gemm(self, graph, node, plan, left, right, base):
        a = node.inputs[0]
        trans_a = node.attributes.get_int("transA", 0)
        trans_b = node.attributes.get_int("transB", 0)
        r = left.shape[1]
        # Keep transB's layout in both factors: B1 = L [K, r] or L^T, B2 = R [r, N] or R^T.
        w1 = add_initializer(graph, f"{base}_lowrank_w1", np.ascontiguousarray(left.T if trans_b else left))
        w2 = add_initializer(graph, f"{base}_lowrank_w2", np.ascontiguousarray(right.T if trans_b else right))
        rows = None
        if a.shape is not None and len(a.shape) == 2:
            rows = [a.shape[1] if trans_a else a.shape[0], r]
        hidden = self._hidden(node.outputs[0], rows, f"{base}_lowrank_hidden")
        first = ir.Node("", "Gemm", [a, w1], attributes=[ir.AttrInt64("transA", trans_a), ir.AttrInt64("transB", trans_b)],
                        outputs=[hidden])
        inputs = [hidden, w2] + ([node.inputs[2]] if len(node.inputs) > 2 and node.inputs[2] is not None else [])
        attrs = [ir.AttrInt64("transB", trans_b), ir.AttrFloat32("alpha", node.attributes.get_float("alpha", 1.0)),
                 ir.AttrFloat32("beta", node.attributes.get_float("beta", 1.0))]
        second = ir.Node("", "Gemm", inputs, attributes=attrs, num_outputs=1)
        return first, second

    def _matmul(self, graph, node, plan, left, right, base):
        x = node.inputs[0]
        w1 = add_initializer(graph, f"{base}_lowrank_w1", np.ascontiguousarray(left))
        w2 = add_initializer(graph, f"{base}_lowrank_w2", np.ascontiguousarray(right))
        r = left.shape[1]
        if plan.weight.layout.index == 1:
            # X [..., K] @ W [K, N] ~= (X @ L) @ R
            shape = list(x.shape)[:-1] + [r] if x.shape is not None and len(x.shape) >= 1 else None
            hidden = self._hidden(node.outputs[0], shape, f"{base}_lowrank_hidden")
            first = ir.Node("", "MatMul", [x, w1], outputs=[hidden])
            return first, ir.Node("", "MatMul", [hidden, w2], num_outputs=1)
        # W [M, K] @ X [..., K, N] ~= L @ (R @ X)
        x = node.inputs[1]
        shape = list(x.shape)[:-2] + [r, x.shape[-1]] if x.shape is not None and len(x.shape) >= 2 else None
        hidden = self._hidden(node.outputs[0], shape, f"{base}_lowrank_hidden")
        first = ir.Node("", "MatMul", [w2, x], outputs=[hidden])
        return first, ir.Node("", "MatMul", [w1, hidden], num_outputs=1)

    def _conv(self, graph, node, plan, left, right, base):
        x = node.inputs[0]
        bias = [b] if (b := bias_of(node)) is not None else []
        shape = plan.weight.shape
        n, c, kernel = shape[0], shape[1], list(shape[2:])
        r = left.shape[1]
        attrs = node.attributes
        auto_pad = attrs.get_string("auto_pad", "NOTSET")
        strides = list(attrs.get_ints("strides", [1] * len(kernel)))
        dilations = list(attrs.get_ints("dilations", [1] * len(kernel)))
        pads = list(attrs.get_ints("pads", [0] * 2 * len(kernel)))
        out_shape = static_shape(node.outputs[0])
        if plan.scheme == "channel":
            # left = U sqrt(S) [N, r] -> 1x1 conv; right = sqrt(S) V^T [r, C k..] -> k x k conv.
            w1 = add_initializer(graph, f"{base}_lowrank_w1", np.ascontiguousarray(right.reshape([r, c] + kernel)))
            w2 = add_initializer(graph, f"{base}_lowrank_w2", np.ascontiguousarray(left.reshape([n, r] + [1] * len(kernel))))
            first_attrs = self._conv_attrs(kernel, strides, dilations, pads, auto_pad)
            second_attrs = self._conv_attrs([1] * len(kernel), [1] * len(kernel), [1] * len(kernel), [0] * 2 * len(kernel), "NOTSET")
            hidden_shape = [out_shape[0], r, *out_shape[2:]] if out_shape is not None else None
        else:
            kh, kw = kernel
            # left [C kh, r] -> V[k, c, i] = left[(c, i), k]; right [r, N kw] -> H[n, k, j] = right[k, (n, j)].
            w1 = add_initializer(graph, f"{base}_lowrank_w1", np.ascontiguousarray(left.T.reshape(r, c, kh, 1)))
            w2 = add_initializer(graph, f"{base}_lowrank_w2", np.ascontiguousarray(right.reshape(r, n, kw).transpose(1, 0, 2).reshape(n, r, 1, kw)))
            # Each axis keeps its own stride, dilation and padding; SAME/VALID auto_pad
            # decomposes per axis too, since the row conv leaves the width unchanged.
            first_attrs = self._conv_attrs([kh, 1], [strides[0], 1], [dilations[0], 1], [pads[0], 0, pads[2], 0], auto_pad)
            second_attrs = self._conv_attrs([1, kw], [1, strides[1]], [1, dilations[1]], [0, pads[1], 0, pads[3]], auto_pad)
            x_shape = static_shape(x)
            hidden_shape = [out_shape[0], r, out_shape[2], x_shape[3]] if out_shape is not None and x_shape is not None else None
        hidden = self._hidden(node.outputs[0], hidden_shape, f"{base}_lowrank_hidden")
        first = ir.Node("", "Conv", [x, w1], attributes=first_attrs, outputs=[hidden])
        second = ir.Node("", "Conv", [hidden, w2, *bias], attributes=second_attrs, num_outputs=1)
        return first, second

    @staticmethod
    def _conv_attrs(kernel, strides, dilations, pads, auto_pad) -> list[ir.Attr]:
        attrs = [ir.AttrInt64s("kernel_shape", kernel), ir.AttrInt64s("strides", strides), ir.AttrInt64s("dilations", dilations)]
        if auto_pad == "NOTSET":
            attrs.append(ir.AttrInt64s("pads", pads))
        else:
            attrs.append(ir.AttrString("auto_pad", auto_pad))
        return attrs
