"""HyPar's gain over data parallelism (16 accelerators) on the paper's networks and the zoo.

Prints figures; asserts nothing. Usage:
    .venv/bin/python benchmarks/hypar.py [--only lenet5,alexnet] [--skip-zoo] [--set gradient=ternary ...]

Paper (Song et al., HPCA 2019) [V]: geometric mean over ten networks LeNet..VGG of 3.39x
performance and 1.51x energy efficiency over data parallelism; over the eight of them rebuilt
here, 3.10x and 1.25x (its Figs. 6 and 7). No constant is fitted to those figures: the link
is the HMC specification's (config.py), in the paper's H tree. The first table is the eight
networks (layer tables in nncc.backends.hypar.fit) with the gains that follow, honestly,
beside the paper's; then their traffic against the paper's Fig. 8; then their sensitivity to
the link and the topology; then the fit as an analysis (what link or accelerator the paper's
gains would imply, with its leave-one-out error); then nncc's plans against the authors'
partition code; then every zoo model compiled through the `hypar` target.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from nncc import models
from nncc.backends.hypar import HyparConfig, HyparTarget, accpar, fit
from nncc.backends.hypar.fidelity import ACCPAR_TOTAL
from nncc.driver import CompileOptions, compile_model
from nncc.render import md_table


def _means(rows: list[tuple[str, float, float]]) -> list[list[str]]:
    out = []
    for kind in ("geometric", "arithmetic"):
        out.append([f"{kind} mean", "", f"{fit.mean([r[1] for r in rows], kind):.2f}x", f"{fit.mean([r[2] for r in rows], kind):.2f}x", ""])
    out.append(["paper (10 networks, with SFC's 23.5x)", "", f"{fit.PAPER_PERF_10:.2f}x", f"{fit.PAPER_ENERGY_10:.2f}x", ""])
    return out


def paper_table(target: HyparTarget) -> None:
    gains = fit.network_gains(target.config)
    nets = fit.paper_networks()
    rows = [(name, p, e) for name, (p, e) in gains.items()]
    table = [[name, str(len(nets[name])), f"{p:.2f}x", f"{e:.2f}x",
              f"paper {fit.PAPER_GAINS[name][0]:.2f}x / {fit.PAPER_GAINS[name][1]:.2f}x"] for name, p, e in rows]
    table += _means(rows)
    table.insert(len(rows) + 1, ["paper (these 8, Figs. 6-7)", "", f"{fit.PAPER_PERF:.2f}x", f"{fit.PAPER_ENERGY:.2f}x", ""])
    print("\nPaper networks (layer tables; no constant fitted to the paper):\n")
    print(md_table(["network", "weighted layers", "perf vs dp", "energy eff. vs dp", "paper (Figs. 6, 7)"], table))


def traffic_table(config: HyparConfig) -> None:
    """Traffic per step (both directions, all links) against the paper's Fig. 8."""
    rows = []
    for name, got in fit.traffic_gb(config).items():
        ref = fit.FIG8[name]
        rows.append([name] + [f"{g:.3g} / {r:g} ({g / r:.2f})" for g, r in zip(got, ref)])
    print("\nTraffic per step, GB, nncc / paper Fig. 8 (ratio); the dp column fixed data_bits (fp32), the others check:\n")
    print(md_table(["network", "all mp", "all dp", "HyPar"], rows))


def sensitivity_table(config: HyparConfig) -> None:
    """Geometric-mean gains as the link moves across the HMC specs' lane rates and plausible SerDes energies."""
    rows = []
    for lane_gbps in (10, 15, 30):  # HMC 1.0: 10, 12.5, 15 Gb/s [V]; 28 Gb/s announced next [V], 30 as a round bound
        for pj in (2.0, 5.0, 10.0):
            c = dataclasses.replace(config, link_bytes_per_s=16 * lane_gbps * 1e9 / 8, link_pj_per_bit=pj)
            g = fit.network_gains(c)
            rows.append([f"16 x {lane_gbps} Gb/s = {16 * lane_gbps / 8:g} GB/s", f"{pj:g}",
                         f"{fit.mean([v[0] for v in g.values()]):.2f}x", f"{fit.mean([v[1] for v in g.values()]):.3f}x"])
    for topology in ("uniform", "pairwise"):
        g = fit.network_gains(dataclasses.replace(config, topology=topology))
        rows.append([f"topology {topology} (default {config.topology})", f"{config.link_pj_per_bit:g}",
                     f"{fit.mean([v[0] for v in g.values()]):.2f}x", f"{fit.mean([v[1] for v in g.values()]):.3f}x"])
    print("\nSensitivity (paper networks, geometric means):\n")
    print(md_table(["link per direction", "pJ/bit", "perf vs dp", "energy eff. vs dp"], rows))


def fit_summary(config: HyparConfig) -> None:
    fitted = fit.fit_constants(config)
    loo = fit.leave_one_out(config)
    print(f"\nThe fit, as an analysis (not the defaults): the paper's eight-network means ({fit.PAPER_PERF:.2f}x, "
          f"{fit.PAPER_ENERGY:.2f}x) need a {fitted['link_bytes_per_s'] / 1e9:.3g} GB/s "
          f"link ({config.link_bytes_per_s / fitted['link_bytes_per_s']:.3g}x slower than the spec's) -- or, the link kept, "
          f"{fitted['macs_per_s'] / 1e12:.3g} TMAC/s per accelerator ({fitted['macs_per_s'] / config.macs_per_s:.3g}x the "
          f"TETRIS-like default) -- at {fitted['link_pj_per_bit']:.3g} pJ/bit "
          f"({fitted['link_pj_per_bit'] / config.link_pj_per_bit:.3g}x the default).")
    print("Leave one out (fit on 7, predict the 8-network mean): perf error "
          + ", ".join(f"{n} {r['perf_error']:+.1%}" for n, r in loo.items())
          + f"; worst {max(abs(r['perf_error']) for r in loo.values()):.1%} perf, "
          f"{max(abs(r['energy_error']) for r in loo.values()):.1%} energy")


def authors_code_check() -> None:
    """nncc's plans on the inputs of the authors' partition code (its batch 512, 7 levels)."""
    print("\nAgainst the authors' partition code (linghaosong/AccPar, HyPar mode; tests/test_hypar_fidelity.py):\n")
    rows = []
    for name, expected in ACCPAR_TOTAL.items():
        got = sum(p.bytes for p in accpar.plans(name))
        rows.append([name, " ".join(accpar.choices(name)), f"{got:,.0f}", f"{expected:,}", f"{got / expected:.4f}"])
    print(md_table(["network", "per-level choices (0 dp, 1 mp)", "nncc elements", "their code", "ratio"], rows))


def zoo_table(target: HyparTarget, only: list[str] | None) -> None:
    names = [m.name for m in models.list_models() if not only or m.name in only]
    rows, table = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            start = time.perf_counter()
            path = models.export(name, Path(tmp) / f"{name}.onnx")
            result = compile_model(path, target, [], CompileOptions(verify_samples=0))
            path.unlink()
            t = result.report["totals"]
            choices = [lvl["mp_layers"] for lvl in t["levels"]]
            rows.append((name, t["gain_perf_vs_dp"], t["gain_energy_vs_dp"]))
            table.append([name, str(len(result.mapping.graph.specs)), f"{t['gain_perf_vs_dp']:.2f}x",
                          f"{t['gain_energy_vs_dp']:.2f}x",
                          (f"mp layers/level {choices}; step {t['latency_s'] * 1e3:.3g} ms (dp {t['dp_latency_s'] * 1e3:.3g}, "
                           f"mp {t['mp_latency_s'] * 1e3:.3g}); comm {t['comm_s'] / t['latency_s']:.0%}; "
                           f"skip edges {t['skip_edges']} ({time.perf_counter() - start:.0f} s)")])
    print("\nZoo models (nncc compile -t hypar):\n")
    print(md_table(["model", "weighted layers", "perf vs dp", "energy eff. vs dp", "notes"], table + _means(rows)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated zoo models")
    parser.add_argument("--skip-zoo", action="store_true")
    parser.add_argument("--set", action="append", default=[], help="key=value config overrides, as nncc --set")
    args = parser.parse_args()
    sets = dict(item.split("=", 1) for item in args.set)
    target = HyparTarget.configure(sets=sets)
    c = target.config
    print(f"hypar: {c.accelerators} accelerators, batch {c.batch}, gradient {c.gradient}, topology {c.topology}, "
          f"link {c.link_bytes_per_s / 1e9:.3g} GB/s (HMC spec), {c.link_pj_per_bit:.4g} pJ/bit, "
          f"{c.macs_per_s / 1e12:.3g} TMAC/s and {c.pj_per_mac:g} pJ/MAC per accelerator")
    paper_table(target)
    traffic_table(c)
    sensitivity_table(c)
    fit_summary(c)
    authors_code_check()
    if not args.skip_zoo:
        zoo_table(target, [n for n in args.only.split(",") if n] or None)


if __name__ == "__main__":
    main()
