"""Hardware constants of the mobile-cpu target and its two profiles.

``pixel2`` (the default) is one Kryo 280 big core of a Snapdragon 835, the LPIRC 2018
reference device (docs/sources.md, "Mobile CPU"). ``host`` is the machine running nncc,
measured by ``nncc calibrate mobile-cpu`` (see :mod:`.calibrate`).

Source tags, as in docs/sources.md: [V] seen in the named source; [U] not yet confirmed
(a starting point, replace when a better source turns up); "fitted constant: ..." names
the rerunnable fit that produced the value.

How the ``host`` profile is obtained (``--set profile=host``, ``calibrate.host_profile``):
1. the cache file written by ``nncc calibrate mobile-cpu`` (``host_cache_path()``:
   ``$NNCC_CACHE_DIR`` or ``$XDG_CACHE_HOME/nncc`` or ``~/.cache/nncc``, file
   ``mobile-cpu-host.toml``) when it exists, parses and has every field;
2. otherwise a quick calibration (~20 s, fewer micro-benchmarks and 43 synthetic kernel graphs, see
   ``calibrate.measure(quick=True)``), which is then written to that cache so the next
   run is instant. A full ``nncc calibrate mobile-cpu`` overwrites it.
A TOML written by ``nncc calibrate mobile-cpu -o FILE`` holds every field, so
``--config FILE`` reproduces that machine's profile anywhere without measuring.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
import tomllib
from typing import Any

from nncc.backends.base import HardwareConfig, hw

# Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, 45 nm,
# as tabulated in Han et al., "Learning both Weights and Connections", NIPS 2015, Table 1.
HOROWITZ = "Horowitz ISSCC 2014 (45 nm), via Han et al. NIPS 2015 Table 1"
SOURCES = 'docs/sources.md, "Mobile CPU"'


@dataclasses.dataclass(frozen=True)
class MobileCpuConfig(HardwareConfig):
    device: str = hw("pixel2: Snapdragon 835, one Kryo 280 big core", source=f"{SOURCES} [V]")
    # "built-in" for pixel2; "measured ..." (when, quick/full) for a host calibration. It selects
    # which sources describe() reports: the built-in ones above or the measured/fitted ones.
    calibration: str = hw("built-in", source="provenance of the values: built-in, or measured by nncc calibrate mobile-cpu")
    # --- compute roof: frequency x SIMD lanes (simd_bits / dtype bits) x FMA units x efficiency
    frequency_hz: float = hw(2.45e9, source=f"{SOURCES} [V]: Kryo 280 big cores 2.45 GHz", unit="Hz", above=0)
    simd_bits: int = hw(128, source=f"{SOURCES} [U]: NEON 128-bit (ARMv8-A ASIMD registers are 128-bit)", unit="bit", above=0)
    fma_units: int = hw(1, source="[U] one 128-bit FMLA per cycle, assumed for the Cortex-A73-derived Kryo 280 big core "
                                  "(AnandTech: base likely A72 or A73, execution pipes unmodified)", unit="per cycle", above=0)
    eff_conv: float = hw(0.80, source="[U] fraction of peak for k x k dense conv (im2col/GEMM kernels of TFLite/ruy); "
                                      "host: fitted constant, calibrate.fit_efficiencies", unit="fraction", above=0)
    eff_pointwise: float = hw(0.75, source="[U] 1x1 conv / batched GEMM; host: fitted constant, calibrate.fit_efficiencies",
                              unit="fraction", above=0)
    eff_depthwise: float = hw(0.25, source="[U] depthwise conv (no reduction over channels, little register reuse); "
                                           "host: fitted constant, calibrate.fit_efficiencies", unit="fraction", above=0)
    eff_grouped: float = hw(0.40, source="[U] grouped (not depthwise) conv; host: fitted constant, calibrate.fit_efficiencies",
                            unit="fraction", above=0)
    eff_gemm: float = hw(0.90, source="[U] Gemm/MatMul (fully connected): batch-1 GEMV issues one 128-bit weight load per "
                                      "FMLA, which the core sustains; host: fitted constant, calibrate.fit_efficiencies",
                         unit="fraction", above=0)
    eff_int8: float = hw(0.50, source="[U] int8 kernels relative to 16 int8 lanes: ARMv8.0 has no SDOT, widening SMLAL "
                                      "halves the rate; host: fitted constant, calibrate (QLinearConv micro-graph)",
                         unit="fraction", above=0)
    work_half_macs: float = hw(256.0, source="[U] MACs per output channel at which a kernel reaches half its class "
                                              "efficiency (penalty m/(m + m_half)); host: fitted constant, calibrate.fit_efficiencies",
                               unit="MAC", minimum=0)
    eff_elementwise: float = hw(0.50, source="[U] fraction of fp32 SIMD lane rate for element-wise/pooling ops",
                                unit="fraction", above=0)
    transcendental_ops: float = hw(12.0, source="[U] SIMD ops per element of exp/tanh/sigmoid/erf (polynomial approximations); "
                                                "host: fitted constant, calibrate (Sigmoid chain)", unit="ops/element", above=0)
    op_cycles: str = hw("LRN=60", source="[U] cycles per output element of ops whose runtime kernels are not the generic "
                                         "SIMD loop ('OP=cycles ...'): LRN evaluates powf per element in scalar code in TFLite "
                                         "and onnxruntime; host: measured by calibrate for common element-wise ops",
                        unit="cycles/element")
    overhead_s: float = hw(2.0e-6, source="[U] per-op dispatch of a TFLite interpreter node on a 2.45 GHz core; "
                                          "host: measured by calibrate (chain of tiny Relu ops)", unit="s", minimum=0)
    invoke_overhead_s: float = hw(5.0e-6, source="[U] fixed cost of one inference call (interpreter Invoke); "
                                                 "host: measured by calibrate (one tiny op, minus one op's overhead)",
                                  unit="s", minimum=0)
    # --- memory roof: DRAM for what does not fit the last-level cache, the cache for what does
    dram_bandwidth: float = hw(29.8e9, source=f"{SOURCES} [V]: LPDDR4X 29.8 GB/s (peak; one core reaches less [U])",
                               unit="B/s", above=0)
    cache_bandwidth: float = hw(39.2e9, source="[U] L2 to core, 16 B/cycle at 2.45 GHz", unit="B/s", above=0)
    cache_bytes: int = hw(2 * 1024 * 1024, source="[V] 2 MB L2 of the Kryo 280 performance cluster (Qualcomm, via press coverage); "
                                                   "weights stay cached when weights + one inference's activation traffic fit",
                          unit="B", minimum=0)
    llc_bytes: int = hw(2 * 1024 * 1024, source="[U] the Kryo 280 cluster's 2 MB L2 taken as its last-level cache (no L3 "
                                                "in the Snapdragon 835's CPU complex); a model whose weights + activation "
                                                "traffic exceed it streams every large matrix-vector weight from DRAM",
                        unit="B", minimum=0)
    weight_stream_bandwidth: float = hw(0.0, source="[U] none for the Pixel 2 (0: the DRAM bandwidth); host: measured by a "
                                                    "full calibration, the rate a batch-1 MatMul chain reads 256 MB of weights",
                                        unit="B/s", minimum=0)
    # --- energy
    pj_per_mac_fp32: float = hw(4.6, source=f"{HOROWITZ}: 32-bit float mult 3.7 pJ + add 0.9 pJ [V]; [U] at 10 nm",
                                unit="pJ", minimum=0)
    pj_per_mac_int8: float = hw(0.23, source=f"{HOROWITZ}: 8-bit int mult 0.2 pJ + add 0.03 pJ [V]; [U] at 10 nm",
                                unit="pJ", minimum=0)
    pj_per_op_fp32: float = hw(0.9, source=f"{HOROWITZ}: 32-bit float add 0.9 pJ [V] (one element-wise op)", unit="pJ", minimum=0)
    pj_per_op_int8: float = hw(0.03, source=f"{HOROWITZ}: 8-bit int add 0.03 pJ [V]", unit="pJ", minimum=0)
    pj_per_dram_byte: float = hw(160.0, source=f"{HOROWITZ}: 32-bit DRAM access 640 pJ = 160 pJ/byte [V]; LPDDR4X is lower [U]",
                                 unit="pJ/B", minimum=0)
    pj_per_cache_byte: float = hw(1.25, source=f"{HOROWITZ}: 32-bit SRAM cache access 5 pJ = 1.25 pJ/byte [V]",
                                  unit="pJ/B", minimum=0)
    static_power_w: float = hw(0.5, source="[U] core power not in the per-op figures (leakage, clocks, instruction overhead); "
                                           "order of magnitude of one big mobile core", unit="W", minimum=0)
    # --- what the runtime fuses into the producing Conv/Gemm (zero extra latency)
    fuse_epilogue: bool = hw(True, source="[V] TFLite converter and onnxruntime fold BatchNorm, bias/scale and "
                                          "activations (Relu, Clip, ...) into the preceding Conv/Gemm")
    fuse_residual_add: bool = hw(False, source="[V] TFLite runs ADD as its own op; onnxruntime's NCHWc Conv fuses the "
                                               "residual Add/Sum (host profile)")
    # --- per-kernel latency fits (nn-Meter style, host profile only): compact JSON of kernel_fit.KernelFits.
    # Empty (pixel2, or a host TOML without it): every layer is costed by the roofline above.
    kernel_fits: str = hw("", source="fitted: calibrate.fit_kernels on sampled synthetic kernels profiled with onnxruntime "
                                     "(kernel_bench); empty = roofline only")

    # --- how fast this machine ran while it was calibrated (host profile only; 0 = not measured)
    reference_conv_s: float = hw(0.0, source="measured: microbench.reference_conv_s (one 3x3 conv layer, 64 channels, "
                                               "56x56) before and after the kernel samples; not used by the estimate: "
                                               "it tells how far a shared machine's speed moved since", unit="s")

    def check(self) -> None:
        parse_op_cycles(self.op_cycles)  # raises ValueError on a malformed table

    def cycles_table(self) -> dict[str, float]:
        """``op_cycles`` parsed: {"LRN": 60.0, ...}."""
        return parse_op_cycles(self.op_cycles)

    def lanes(self, bits: int) -> int:
        """SIMD lanes for a ``bits``-wide element: 4 fp32 or 16 int8 on 128-bit NEON."""
        return max(1, self.simd_bits // bits)

    def peak_macs_per_s(self, dtype: str) -> float:
        """Nominal MAC rate of the core: frequency x lanes x FMA units (before efficiency)."""
        return self.frequency_hz * self.lanes(8 if dtype == "int8" else 32) * self.fma_units


@functools.lru_cache(maxsize=64)
def parse_op_cycles(text: str) -> dict[str, float]:
    table = {}
    for item in text.replace(",", " ").split():
        op, sep, value = item.partition("=")
        try:
            table[op] = float(value)
        except ValueError:
            sep = ""
        if not sep or not op or table[op] < 0:
            raise ValueError(f"op_cycles: '{item}' is not OP=cycles (e.g. 'LRN=60 PRelu=9')")
    return table


# Host fields that a calibration does not touch keep these sources ([U] on any machine).
HOST_STATIC_SOURCES = {
    "fma_units": "[U] 2 FMA pipes assumed for x86-64 cores with FMA (Zen, Haswell and later); 1 elsewhere",
    "static_power_w": "[U] not measured; order of magnitude of one server/desktop core",
}


def pixel2() -> MobileCpuConfig:
    return MobileCpuConfig()


def host_cache_path() -> pathlib.Path:
    if os.environ.get("NNCC_CACHE_DIR"):
        return pathlib.Path(os.environ["NNCC_CACHE_DIR"]) / "mobile-cpu-host.toml"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "nncc" / "mobile-cpu-host.toml"


def from_values(values: dict[str, Any]) -> MobileCpuConfig:
    fields = {f.name for f in dataclasses.fields(MobileCpuConfig)}
    return dataclasses.replace(MobileCpuConfig(), **{k: v for k, v in values.items() if k in fields})


def read_toml(path: pathlib.Path) -> dict[str, Any]:
    data = tomllib.loads(path.read_text())
    return data.get("mobile-cpu", {k: v for k, v in data.items() if not isinstance(v, dict)})


def cached_host() -> MobileCpuConfig | None:
    """The ``host`` profile from the calibration cache, or None when there is no usable one."""
    try:
        values = read_toml(host_cache_path())
        if not {f.name for f in dataclasses.fields(MobileCpuConfig)} - set(values):  # a stale cache lacks new fields
            return from_values(values)
    except (OSError, tomllib.TOMLDecodeError, ValueError, TypeError):
        pass
    return None


def to_toml(values: dict[str, Any], comments: dict[str, str] | None = None) -> str:
    """A ``[mobile-cpu]`` table usable with ``--config`` (one key per Config field)."""
    lines = ["[mobile-cpu]"]
    for key, value in values.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str):
            text = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        elif isinstance(value, int):
            text = str(value)
        else:
            text = repr(float(value))
        note = (comments or {}).get(key)
        lines.append(f"{key} = {text}" + (f"  # {note}" if note else ""))
    return "\n".join(lines) + "\n"
