"""The kernels onnxruntime's optimized graph runs, named as :mod:`.kernels` names what it detects.

Detection (:func:`.kernels.detect`) predicts the kernels from nncc's mapping; this module reads
them back from the graph onnxruntime writes with ``optimized_model_filepath``, so that tests and
calibration (:mod:`.kernel_bench`) can pair each profiled kernel with a detected one.
"""

from __future__ import annotations

from typing import Any

# Transformer fusions onnxruntime names after no node of the original graph: known by their output.
NAMED_BY_OUTPUT = frozenset({"Gelu", "SkipLayerNormalization", "FusedMatMul"})


def ort_kernels(optimized: Any) -> list[tuple[str, str]]:
    """(name, op type) of each kernel in onnxruntime's optimized graph (``optimized_model_filepath``),
    named like :class:`Kernel`: NCHWc nodes by their output without ``_nchwc``, reorders by the
    NCHW tensor they convert, the Reshapes MatMulAddFusion puts around its Gemm after that Gemm
    (``reshape_in:``/``reshape_out:``), the transformer fusions named after no original node by
    their output. Initializer-only nodes are not kernels."""
    out = []
    gemm_of = {}  # tensor -> the MatMulAddFusion Gemm reading or writing it
    for node in optimized.graph.node:
        if node.name.endswith("/MatMulAddFusion"):
            gemm_of.update((name, node.name.removesuffix("/MatMulAddFusion")) for name in (node.input[0], node.output[0]))
    for node in optimized.graph.node:
        if node.op_type == "ReorderInput":
            out.append((f"reorder_in:{node.input[0]}", node.op_type))
        elif node.op_type == "ReorderOutput":
            out.append((f"reorder_out:{node.output[0]}", node.op_type))
        elif node.domain == "com.microsoft.nchwc":
            out.append((node.name.removesuffix("_nchwc"), node.op_type))
        elif node.op_type in NAMED_BY_OUTPUT:
            out.append((node.output[0], node.op_type))
        elif node.op_type == "Reshape" and node.name.startswith("gemm_input_reshape") and node.output[0] in gemm_of:
            out.append((f"reshape_in:{gemm_of[node.output[0]]}", node.op_type))
        elif node.op_type == "Reshape" and node.name.startswith("gemm_output_reshape") and node.input[0] in gemm_of:
            out.append((f"reshape_out:{gemm_of[node.input[0]]}", node.op_type))
        else:  # "fused <first node>" (Conv/Gemm + activation), "<MatMul node>/MatMulAddFusion", or the node's own name
            out.append((node.name.removeprefix("fused ").removesuffix("/MatMulAddFusion"), node.op_type))
    return out
