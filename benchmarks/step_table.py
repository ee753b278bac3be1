#!/usr/bin/env python3
"""step_table.py — joins the JSON lines of bench_step (C) and bench_torch_step.py
(plain PyTorch) into the markdown table of benchmarks/RESULTS.md, with the
issue's three targets checked:
  standard step <= 1.3x its encoder sgemm;
  temporal / separate <= 1.2x standard, per token;
  every variant >= 3x the PyTorch step (tokens/s).
usage: step_table.py C.jsonl TORCH.jsonl
"""
import json
import sys


def load(path):
    rows = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                r = json.loads(line)
                rows.setdefault(r["variant"], {}).update(r)  # (--phases adds a second line per variant)
    return rows


def main():
    c, t = load(sys.argv[1]), load(sys.argv[2])
    std = c.get("standard")
    print("| variant | tokens | step (s) | encoder sgemm (s) | step/sgemm | tokens/s | PyTorch tokens/s | speed-up vs PyTorch | target |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for v, r in c.items():
        tp = t.get(v, {}).get("tokens_per_s")
        speed = r["tokens_per_s"] / tp if tp else None
        checks = []
        if v == "standard":
            ratio = r["step_s"] / r["sgemm_s"]
            checks.append(f"step/sgemm {ratio:.2f} {'<=' if ratio <= 1.3 else '>'} 1.3 {'ok' if ratio <= 1.3 else 'MISSED'}")
        if v in ("temporal", "separate") and std:
            per_tok = std["tokens_per_s"] / r["tokens_per_s"]
            checks.append(f"{per_tok:.2f}x standard per token {'ok' if per_tok <= 1.2 else 'MISSED'} (<= 1.2)")
        if speed is not None:
            checks.append(f">= 3x PyTorch {'ok' if speed >= 3 else 'MISSED'}")
        print(f"| {v} | {r['tokens']} | {r['step_s']:.3f} | {r['sgemm_s']:.3f} | {r['step_s'] / r['sgemm_s']:.2f} | "
              f"{r['tokens_per_s']:.0f} | {tp:.0f} | {speed:.1f}x | {'; '.join(checks)} |" if tp else
              f"| {v} | {r['tokens']} | {r['step_s']:.3f} | {r['sgemm_s']:.3f} | {r['step_s'] / r['sgemm_s']:.2f} | "
              f"{r['tokens_per_s']:.0f} | — | — | {'; '.join(checks)} |")


if __name__ == "__main__":
    main()
