#!/usr/bin/env python3
"""phase_table.py — issue 18's table from bench_step --json --phases: each
variant's step over its encoder sgemm without and with 10% dead latents,
checked against the issue's targets (<= 1.2x; <= 1.4x for BatchTopK, +M),
and where the step's time goes beyond the GEMM (sae_step_phases, sae.h).
usage: phase_table.py NO_DEAD.jsonl DEAD.jsonl
(--gemm bf16 runs: the step over the fp32 sgemm, and the bf16 product alone)
"""
import sys

from step_table import load

TARGET = {"standard": 1.2, "temporal": 1.2, "separate": 1.2, "raster": 1.2, "frozen": 1.2,
          "standard+M": 1.4, "temporal+M": 1.4, "separate+M": 1.4}
SHOWN = ("select", "decode", "auxk", "backward", "grads", "optimizer")


def main():
    a, b = load(sys.argv[1]), load(sys.argv[2])
    bf16 = any(r.get("gemm") == "bf16" for r in a.values())
    print("| variant | tokens | step (s) | sgemm (s) | step/sgemm | tokens/s | 10% dead: step/sgemm | tokens/s | target |"
          + (" bf16 product alone (s) |" if bf16 else ""))
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|" + ("---:|" if bf16 else ""))
    for v, r in a.items():
        d = b.get(v, {})
        ra = r["step_s"] / r["sgemm_s"]
        rb = d["step_s"] / d["sgemm_s"] if d else float("nan")
        t = TARGET.get(v)
        if bf16:
            check = ""
        elif t is None:
            check = "(none)"
        else:
            worst = max(ra, rb)
            check = f"<= {t}: {'ok' if worst <= t else 'MISSED'}"
        extra = f" {r['bf16_s']:.3f} |" if bf16 else ""
        print(f"| {v} | {r['tokens']} | {r['step_s']:.3f} | {r['sgemm_s']:.3f} | {ra:.2f} | {r['tokens_per_s']:.0f} | "
              f"{rb:.2f} | {d.get('tokens_per_s', float('nan')):.0f} | {check} |{extra}")
    print()
    print("| variant (no dead / 10% dead), ms | gemm | " + " | ".join(SHOWN) + " | stats, index, b_dec |")
    print("|---|" + "---:|" * (len(SHOWN) + 2))
    for v, r in a.items():
        cells = []
        for key in ("gemm",) + SHOWN:
            x = r["phases_s"][key] * 1e3
            y = b[v]["phases_s"][key] * 1e3 if v in b else float("nan")
            cells.append(f"{x:.0f} / {y:.0f}")
        rest = sum(r["phases_s"][q] for q in ("stats", "index", "b_dec")) * 1e3
        print(f"| {v} | " + " | ".join(cells) + f" | {rest:.0f} |")


if __name__ == "__main__":
    main()
