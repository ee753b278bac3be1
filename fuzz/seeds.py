#!/usr/bin/env python3
"""seeds.py — the generated seeds of the fuzz targets (fuzz/CMakeLists.txt runs
it at build time; nothing binary is committed).

In:  --out DIR (the build's seeds directory) and the source tree (for the deck
     schema's keys).
Out: DIR/<target>/ seed files and DIR/deck.dict:
  safetensors/  small valid model.safetensors files (F32 tensors aligned and
                not, F16, BF16, I64, a scalar, an empty tensor, __metadata__)
                and near misses (overlap, gap, trailing byte, short header);
  features/, model/  descriptions for the structure-aware targets: the usual
                valid file, each single deviation from it, and a few
                deterministic pseudo-random byte strings;
  deck.dict     libFuzzer dictionary: every key of src/deck/deck_schema.c, its
                enum values, and YAML punctuation.
Text seeds (CSV, JSON, YAML) are committed under fuzz/corpus/<target>/.
"""
import argparse
import json
import os
import random
import re
import struct


def safetensors(tensors, metadata=None, pad_to=8, trailing=b"", header_edit=None):
    """tensors: list of (name, dtype, shape, raw bytes)."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if header_edit:
        header_edit(header)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((-len(h)) % pad_to)
    return struct.pack("<Q", len(h)) + h + data + trailing


def f32(*v):
    return struct.pack(f"<{len(v)}f", *v)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--source", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    a = ap.parse_args()

    def put(target, name, data):
        d = os.path.join(a.out, target)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)

    w = ("w", "F32", [2, 3], f32(1, 2, 3, 4, 5, 6))
    b = ("b", "F32", [3], f32(0.5, -0.5, 0))
    put("safetensors", "two_f32", safetensors([w, b]))
    put("safetensors", "unaligned", safetensors([("h", "F16", [3], b"\x00\x3c" * 3), w], pad_to=1))
    put("safetensors", "dtypes", safetensors([("i", "I64", [1], struct.pack("<q", 7)), ("bf", "BF16", [2], b"\x80\x3f" * 2),
                                              ("s", "F32", [], f32(3)), ("e", "F32", [0, 4], b""),
                                              ("u", "U8", [2, 2], b"\x01\x02\x03\x04")],
                                             metadata={"format": "pt"}))
    put("safetensors", "empty", safetensors([]))
    put("safetensors", "vit_like", safetensors([
        ("embeddings.patch_embeddings.projection.weight", "F32", [2, 3, 1, 1], f32(*range(6))),
        ("embeddings.cls_token", "F32", [1, 1, 2], f32(0, 1)),
        ("encoder.layer.0.norm1.weight", "F32", [2], f32(1, 1))]))

    def overlap(h):
        h["b"]["data_offsets"] = [8, 20]
    put("safetensors", "overlap", safetensors([w, b], header_edit=overlap))
    put("safetensors", "trailing", safetensors([w], trailing=b"\x00"))
    put("safetensors", "short_header", struct.pack("<Q", 1 << 20) + b"{}")

    # structure-aware descriptions. A byte of 100 takes every choice's likelier
    # outcome (fb_chance(p) is byte < p: likely events have p >= 128, unlikely
    # ones p < 100), so 100s describe the usual valid file; one byte changed to
    # 0 (every event happens) or 255 (none does) at each of the first choices
    # gives a seed per single deviation, from which the fuzzer combines.
    # (Data bytes are taken from the input's end, choices from its front.)
    rng = random.Random(20240501)
    for target in ("features", "model"):
        put(target, "usual", bytes([100] * 96))
        for i in range(64):
            for v in (0, 255):
                b = bytearray([100] * 96)
                b[i] = v
                put(target, f"dev{i:02d}_{v}", bytes(b))
        for i in range(4):
            put(target, f"random{i:02d}", bytes(rng.randrange(256) for _ in range(rng.choice([16, 256, 1024]))))

    # the deck dictionary: schema keys (last path component and the whole path), enums, YAML
    src = open(os.path.join(a.source, "src", "deck", "deck_schema.c"), encoding="utf-8").read()
    words = set()
    for key, allowed in re.findall(r'\{"([a-z_.A-Z0-9]+)",\s*DECK_\w+,\s*(?:"[^"]*"|NULL),\s*("[^"]*"|NULL|VARIANTS)', src):
        words.add(key.split(".")[-1] + ":")
        words.add(key + "=")
        if allowed.startswith('"') and "|" in allowed:
            words.update(allowed.strip('"').split("|"))
    m = re.search(r'#define VARIANTS "([^"]*)"', src)
    if m:
        words.update(m.group(1).split("|"))
    words.update(["true", "false", "null", "~", "[", "]", "{", "}", ", ", ": ", "- ", "&a ", "*a", "<<: ",
                  "\n  ", "\n    - ", "!!str ", "1.0e-8", ".inf", ".nan", "0x10", "1e400", "9223372036854775808",
                  "'", '"', "#", "---", "..."])
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "deck.dict"), "w", encoding="utf-8") as f:
        for word in sorted(words):
            f.write('"' + "".join(c if c.isprintable() and c not in '"\\' else f"\\x{ord(c):02x}" for c in word) + '"\n')
    with open(os.path.join(a.out, "stamp"), "w") as f:
        f.write("ok\n")


if __name__ == "__main__":
    main()
