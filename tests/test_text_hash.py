"""The stand-in text embedder (src/metrics/text_hash.c) against this file's
own implementation of text_hash.h's definition (feature hashing of the
lowercased ASCII words and adjacent word pairs, 64-bit FNV-1a, sign from bit
63, unit length), on label texts of the synthetic set and edge cases (no
words, punctuation, case, digits, a long text), at two widths; then what the
embedder is for: labels that differ only in word order ("from left to right",
"from right to left") are similar but not equal.

  /usr/bin/python3 tests/test_text_hash.py --dump build/tests/text_hash_dump
"""
import argparse
import re
import subprocess
import sys

import numpy as np

TEXTS = [
    "Moving something from left to right",
    "Moving something from right to left",
    "Pushing something so that it slightly moves",
    "Turning the camera upwards while filming something",
    "",
    "  ... !!! ",
    "UPPER lower MiXeD 42 answers, 7th",
    "a " * 300 + "end",
]


def fnv1a(b):
    h = 0xcbf29ce484222325
    for c in b:
        h = ((h ^ c) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def embed(text, dim):
    words = [w.lower() for w in re.findall(r"[A-Za-z0-9]+", text)]
    items = words + [f"{a} {b}" for a, b in zip(words, words[1:])]
    v = np.zeros(dim)
    for s in items:
        h = fnv1a(s.encode())
        v[h % dim] += -1.0 if h >> 63 else 1.0
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump", required=True)
    a = ap.parse_args()
    fails = 0
    for dim in (256, 37):
        p = subprocess.run([a.dump, str(dim)], input="\n".join(TEXTS) + "\n", capture_output=True, text=True,
                           check=True)
        got = np.array([[float(x) for x in line.split()] for line in p.stdout.splitlines()])
        want = np.stack([embed(t, dim) for t in TEXTS])
        err = float(np.abs(got - want).max())
        ok = got.shape == want.shape and err < 1e-6
        print(f"{'ok  ' if ok else 'FAIL'} dim {dim}: {len(TEXTS)} texts against the reference, max |diff| {err:.2e}")
        fails += not ok
        if dim == 256:
            cos = float(got[0] @ got[1])
            ok = 0.3 < cos < 0.95 and float(got[0] @ got[2]) < cos
            print(f"{'ok  ' if ok else 'FAIL'} 'left to right' vs 'right to left': cosine {cos:.3f} (similar, not "
                  f"equal); vs another action {float(got[0] @ got[2]):.3f}")
            fails += not ok
            ok = not got[4].any() and not got[5].any() and abs(np.linalg.norm(got[0]) - 1) < 1e-6
            print(f"{'ok  ' if ok else 'FAIL'} no words: zero vector; otherwise unit length")
            fails += not ok
    print("text_hash:", "FAILED" if fails else "passed")
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
