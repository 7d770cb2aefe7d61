"""A model over 2 GB (weights in external data) compiles: time and peak memory against the goal.

Builds an MLP of nine 8192 x 8192 float32 Gemm layers (2.42 GB of weights, seeded) saved with
its weights in ``big_mlp.onnx.data`` (a protobuf cannot hold 2 GB), then runs ``nncc compile``
on it for each target named, each in its own process, with ``--verify 0`` and with the default
verification, and prints wall time, peak RSS (``os.wait4``) and the goal 1.5 x weights + 300 MB.
Prints, never asserts. Needs about 5 GB of free disk and 6 GB of memory.

    .venv/bin/python benchmarks/big_model.py [--targets mobile-cpu,hypar] [--folder /tmp/nncc-big]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from nncc.render import md_table

NNCC = [sys.executable, "-c", "import sys; from nncc.cli import main; sys.exit(main())"]
WIDTH, LAYERS = 8192, 9


def build(path: pathlib.Path) -> None:
    rng = np.random.default_rng(0)
    nodes, weights, x = [], [], "input"
    for i in range(LAYERS):
        w = (rng.standard_normal((WIDTH, WIDTH), dtype=np.float32) / np.sqrt(WIDTH)).astype(np.float32)
        weights.append(numpy_helper.from_array(w, f"w{i}"))
        last = i == LAYERS - 1
        nodes.append(helper.make_node("Gemm", [x, f"w{i}"], ["output" if last else f"g{i}"], transB=1, name=f"fc{i}"))
        if not last:
            nodes.append(helper.make_node("Relu", [f"g{i}"], [f"h{i}"], name=f"relu{i}"))
            x = f"h{i}"
    graph = helper.make_graph(nodes, "big_mlp", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, WIDTH])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, WIDTH])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=path.name + ".data")


def timed(args: list[str]) -> tuple[float, float, int, str]:
    start = time.perf_counter()
    proc = subprocess.Popen([*NNCC, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - start, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), (err.strip().splitlines() or [""])[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="mobile-cpu,hypar")
    parser.add_argument("--folder", default="/tmp/nncc-big")
    parser.add_argument("--build", help=argparse.SUPPRESS)  # the child that writes the model
    args = parser.parse_args()
    if args.build:
        build(pathlib.Path(args.build))
        return
    folder = pathlib.Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        model = folder / "big_mlp.onnx"
        # Built in a child: a parent holding the arrays would lend its RSS to every forked compile
        # (ru_maxrss counts the pages a child has before it execs).
        subprocess.run([sys.executable, __file__, "--build", str(model)], check=True)
        weight_mb = LAYERS * WIDTH * WIDTH * 4 / (1 << 20)
        rows = []
        for target in args.targets.split(","):
            for verify in ("0", "4"):
                wall, rss, code, last = timed(["compile", str(model), "-t", target, "--verify", verify, "--format", "json",
                                               "-o", str(folder / f"out-{target}-{verify}")])
                rows.append([target, verify, f"{wall:.1f} s", f"{rss:.0f} MB", f"{rss / weight_mb:.2f}",
                             "ok" if code == 0 else f"exit {code}: {last[:60]}"])
        print(md_table(["target", "--verify", "wall", "peak RSS", "RSS / weights", "outcome"], rows))
        print(f"weights {weight_mb:.0f} MB in external data; goal 1.5 x weights + 300 MB = {1.5 * weight_mb + 300:.0f} MB")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
