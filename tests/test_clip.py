#!/usr/bin/python3
"""CLIP in C (`stsae check-clip MODEL IN.h5 OUT.h5`) against Hugging Face
`transformers`.

reference suite: two tiny random-weight CLIPModels made by `transformers`
  (tests/ref/clip_ref.py make: save_pretrained), with the real CLIP
  vocabulary (vocab.json + merges.txt made here from the
  bpe_simple_vocab_16e6 file that the open_clip_torch wheel ships):
  A: the defaults (quick GELU, end token 49407: pooled at its first
     position), text 2 blocks, vision 32 px / patch 8;
  B: gelu, a legacy text config (eos_token_id 2: pooled at the largest id),
     LayerNorm eps 1e-6, vision 48 px / patch 16, 3 blocks, and a
     tokenizer_config.json whose pad token is "!" (as LAION's checkpoints).
  Inputs: random pixels, and texts: the synthetic set's templates
  (src/stages/synth.c), their SSv2 bracket forms ("Pushing [something] ..."),
  hand-picked cases (contractions, NFC, İ, Greek, CJK, emoji with
  modifiers and joiners, every kind of white space, special tokens in the
  text, truncation at 77) and 300 random strings of letters, accents
  (precomposed and combining), digits, punctuation, emoji and white space.
  Checked: token ids equal to CLIPTokenizer's (padding="max_length",
  truncation=True) everywhere; image and text embeddings within 1e-4 of the
  float64 model's (max |diff| / max |ref|) — CLIPModel's image_embeds and
  text_embeds before normalisation.
extract suite: `stsae extract` with extract.clip (model A) on the synthetic
  videos, their labels written in SSv2's bracket form, on 1 and 3 ranks
  (the same embeddings): /clip_embeddings equal, to 1e-4, the mean over each
  clip's 4 frames of the unit image embeddings that transformers computes
  from the same decoded frames through CLIPImageProcessorPil (PIL bicubic to
  the model's 32 px from 48, OpenAI's mean/std), and /text_embeddings the
  text embeddings of the label names with the brackets removed; the frames
  are check-video's pixels at the native size mapped back to uint8. Then
  `stsae run` from videos alone with extract.clip and eval.embeddings: clip:
  results.md's Table 1 says MS used CLIP's image embeddings, and Table 5
  retrieves against CLIP's label embeddings.
bad suite: broken directories and inputs (a missing tensor, a wrong shape,
  bad JSON, an unsupported activation, a config claiming more layers, a
  truncated or malformed merges.txt, vocab.json missing or not an object,
  pixels of the wrong size, no inputs, a text that is not UTF-8): each exits
  1 with one line naming the file and the tensor, key or line, and leaves no
  OUT.h5.
--planted BIN --plants a,b,..: (--suite all, or --reuse: on the models and
  references a finished run left in --workdir, without `transformers`) each
  fault of the stsae-planted build must fail the reference or extract checks: clip_no_causal (text attention not causal), clip_exact_gelu (erf
  GELU for quick GELU), clip_pool_first (text pooled at the start token),
  clip_no_nfc, clip_number_runs (digits as runs), clip_literal_whole
  ("<|endoftext|>" in a text one BPE word), clip_merges_skip (merges.txt's
  last lines unread), clip_pool_raw (frames averaged without their unit
  normalisation).

`transformers` runs in the cached virtual environment (--venv, shared with
the export test: tests/ref/venv_cache.py; SAELens brings transformers and
PyTorch); the open_clip_torch wheel is downloaded there once (pip download,
no dependencies). Where either cannot be had (no network, STSAE_NO_PIP=1),
exit 77 (skipped) saying what to install.

  /usr/bin/python3 tests/test_clip.py --stsae build/stsae --venv VENV --workdir DIR
        [--suite reference|extract|bad|all] [--mpirun mpirun --mpi-flags=--oversubscribe] [--planted build/stsae-planted --plants a,b,...]
"""
import argparse
import glob
import gzip
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import zipfile

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "ref"))
from venv_cache import venv_python  # noqa: E402

SKIP = 77
TOL = 1e-4

MODELS = {
    "A": {"text": {"hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4},
          "vision": {"hidden_size": 48, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                     "image_size": 32, "patch_size": 8},
          "projection_dim": 24, "seed": 1, "n_images": 5},
    "B": {"text": {"hidden_size": 24, "intermediate_size": 40, "num_hidden_layers": 1, "num_attention_heads": 2,
                   "hidden_act": "gelu", "eos_token_id": 2, "bos_token_id": 0, "pad_token_id": 1},
          "vision": {"hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 3, "num_attention_heads": 2,
                     "image_size": 48, "patch_size": 16, "hidden_act": "gelu", "layer_norm_eps": 1e-6},
          "projection_dim": 16, "seed": 2, "n_images": 18,  # 18: two batches of the vision tower (16 + 2)
          "tokenizer_config": {"pad_token": "!"}},
}


# --- the real CLIP vocabulary -------------------------------------------------------

def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def clip_vocabulary(py, cache):
    """(vocab.json text, merges.txt text) from open_clip's bpe_simple_vocab_16e6, or (None, why)."""
    os.makedirs(cache, exist_ok=True)
    wheels = glob.glob(os.path.join(cache, "open_clip_torch-*.whl"))
    if not wheels:
        if os.environ.get("STSAE_NO_PIP"):
            return None, "the open_clip_torch wheel is not cached and STSAE_NO_PIP is set"
        p = subprocess.run([py, "-m", "pip", "download", "--quiet", "--no-deps", "-d", cache, "open_clip_torch"],
                           capture_output=True, text=True, timeout=600)
        wheels = glob.glob(os.path.join(cache, "open_clip_torch-*.whl"))
        if p.returncode or not wheels:
            return None, f"pip download open_clip_torch failed (no network?): {p.stderr.strip()[-300:]}"
    with zipfile.ZipFile(wheels[0]) as z:
        name = next(n for n in z.namelist() if n.endswith("bpe_simple_vocab_16e6.txt.gz"))
        lines = gzip.decompress(z.read(name)).decode("utf-8").split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]  # as open_clip's SimpleTokenizer reads it
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return (json.dumps({v: i for i, v in enumerate(vocab)}, ensure_ascii=False),
            "#version: 0.2\n" + "\n".join(merges) + "\n"), ""


# --- texts --------------------------------------------------------------------------

def synth_templates():
    src = open(os.path.join(ROOT, "src", "stages", "synth.c")).read()
    body = re.search(r"TEMPLATE_NAMES\[N_TEMPLATES\] = \{(.*?)\};", src, re.S).group(1)
    names = re.findall(r'"([^"]*)"', body)
    assert len(names) >= 10, names
    # SSv2's templates write the objects in brackets: "Pushing [something] from left to right"
    return names + [n.replace("something", "[something]").replace("Something", "[Something]") for n in names]


HAND = [
    "", "   ", "Hello, World!", "it's 2024's best", "don't", "it'S", "''s '''", "ÉCOLE Über alles",
    "e\u0301te\u0301 cafe\u0301", "x\u0301y", "İstanbul", "ΟΔΟΣ σοφία", "naïve café", "日本語のテキスト 中文",
    "emoji 😀👍🏽 family 👨‍👩‍👧 flag 🇫🇷", "tab\tand\nnewline  spaces\u00a0nbsp\u3000ideo\u2028sep",
    "12345 3.14 ½ ² ٣ Ⅻ", "<|startoftext|>hi<|endoftext|>there", "<|ENDOFTEXT|> upper", "<|ENDOFTEXT|>!! x<|STARTOFTEXT|>", "&amp; <b>bold</b>",
    "ﬁne ligature", "ǅungla title", "a" * 300, "!!!???...", "Pushing something from left to right " * 12,
    "ŉ ǰ ß ẞ", "\u200bzero\u200dwidth", "Ḁ̸̶̡ zalgo",
]


def random_texts(n, seed):
    rng = random.Random(seed)
    pools = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", " ,.;:!?'\"()[]{}-_/\\@#$%^&*+=<>|~`",
        "àéîõüñçÅØßÉÈÀÖ", "\u0300\u0301\u0308\u0327", "😀🎉👍🏽❤️🚀🐍", "ΣσςΔλДжЯ", "中文字日本", "\t\n \u00a0\u3000",
        "٣½²ⅫⅪ", "'s't're've'm'll'd",
    ]
    out = []
    for _ in range(n):
        k = rng.randint(1, 40)
        s = []
        for _ in range(k):
            pool = pools[rng.randrange(len(pools))]
            s.append(pool[rng.randrange(len(pool))])
        out.append("".join(s))
    return out


# --- safetensors by hand (the bad cases) ------------------------------------------------

def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", None)
    data = raw[8 + n:]
    return {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items()}, meta


def write_safetensors(path, tensors, meta=None):
    header, blobs, off = {}, [], 0
    for k, (dtype, shape, blob) in tensors.items():
        header[k] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    if meta:
        header["__metadata__"] = meta
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


# --- running ------------------------------------------------------------------------

def write_input(path, pixels, texts, raw_texts=None):
    with h5py.File(path, "w") as f:
        if pixels is not None:
            f["pixels"] = pixels
        if texts is not None:
            f.create_dataset("texts", data=texts, dtype=h5py.string_dtype("utf-8"))
        if raw_texts is not None:  # bytes as they are (invalid UTF-8 included)
            f.create_dataset("texts", data=raw_texts, dtype=h5py.string_dtype("utf-8"))


def run_stsae(stsae, model, inp, out, plant=None):
    env = dict(os.environ, OMP_NUM_THREADS="2")
    if plant:
        env["STSAE_PLANT"] = plant
    return subprocess.run([stsae, "check-clip", model, inp, out], capture_output=True, text=True, env=env)


def compare(name, got, want):
    diff = float(np.abs(got - want).max()) if want.size else 0.0
    scale = float(np.abs(want).max()) if want.size else 1.0
    rel = diff / max(scale, 1e-30)
    ok = got.shape == want.shape and rel <= TOL
    print(f"{'ok  ' if ok else 'FAIL'} {name}: shape {got.shape}, max |diff| {diff:.3e} "
          f"(relative to max |ref| {scale:.3e}: {rel:.1e})")
    return ok


def all_texts():
    return synth_templates() + HAND + random_texts(300, seed=7)


def reference_inputs(work):
    """Per model: pixels and the texts, written for stsae (IN.h5) and the reference (IN.npz)."""
    texts = all_texts()
    jobs = {}
    for name, spec in MODELS.items():
        S, n = spec["vision"]["image_size"], spec["n_images"]
        pixels = np.random.default_rng(spec["seed"]).standard_normal((n, 3, S, S)).astype(np.float32)
        write_input(os.path.join(work, f"in_{name}.h5"), pixels, texts)
        np.savez(os.path.join(work, f"ref_in_{name}.npz"), pixels=pixels, texts=np.array(texts))
        jobs[name] = {"in": os.path.join(work, f"ref_in_{name}.npz"), "out": os.path.join(work, f"ref_out_{name}.npz")}
    return texts, jobs


def reference_suite(stsae, work, models, texts, plant=None):
    fails = 0
    for name, spec in MODELS.items():
        S, n = spec["vision"]["image_size"], spec["n_images"]
        inp, out = os.path.join(work, f"in_{name}.h5"), os.path.join(work, f"out_{name}.h5")
        if os.path.exists(out):
            os.remove(out)
        p = run_stsae(stsae, models[name], inp, out, plant)
        if p.returncode:
            print(f"FAIL {name}: check-clip exit {p.returncode}: {p.stderr.strip()[-500:]}")
            fails += 1
            continue
        print(f"     {name}: {p.stdout.strip()}")
        ref = np.load(os.path.join(work, f"ref_out_{name}.npz"))
        with h5py.File(out, "r") as f:
            img, txt, ids = f["image_embeddings"][()], f["text_embeddings"][()], f["token_ids"][()]
        fails += not compare(f"{name} image embeddings ({n} images of {S} px)", img, ref["image_embeddings"])
        want = ref["token_ids"]
        wrong = [i for i in range(len(texts)) if ids.shape != want.shape or (ids[i] != want[i]).any()]
        print(f"{'ok  ' if not wrong else 'FAIL'} {name} token ids ({ref['tokenizer']}): "
              f"{len(texts) - len(wrong)} of {len(texts)} texts equal")
        for i in wrong[:5]:
            print(f"       text {i} {texts[i]!r}:\n         stsae {ids[i][:24].tolist()}\n"
                  f"         ref   {want[i][:24].tolist()}")
        fails += bool(wrong)
        fails += not compare(f"{name} text embeddings ({len(texts)} texts)", txt, ref["text_embeddings"])
    return fails


EXTRACT_DECK = """run_dir: {run}
synth: {{out: data, clips: {clips}, frames: 8, size: 48, seed: 3, test_frac: 0.34}}
extract:
  input: {{csv: data/clips.csv}}
  backbone: pixels
  layers: [0]
  frames: 4
  image_size: 32
  patch: 8
  batch_clips: 2
  clip: {clip}
"""


RUN_DECK = EXTRACT_DECK + """train:
  layer: 0
  expansion: 1
  k: 8
  k_aux: 32
  epochs: 2
  batch_tokens: 64
  batch_clips: 2
  batch_pairs: 32
  grid:
    - {{variant: standard}}
eval:
  embeddings: clip
report:
  browse: false
"""


def run_suite(a, work, model_dir):
    """`stsae run` from videos alone with extract.clip: Table 1's MS under CLIP similarity, Table 5 on
    CLIP's label embeddings."""
    run = os.path.join(work, "run")
    os.makedirs(run, exist_ok=True)
    deck = os.path.join(run, "deck.yaml")
    open(deck, "w").write(RUN_DECK.format(run=run, clip=model_dir, clips=24))
    env = dict(os.environ, OMP_NUM_THREADS="2", OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    p = subprocess.run([a.stsae, "run", deck], capture_output=True, text=True, env=env)
    if p.returncode:
        print(f"FAIL stsae run with extract.clip: exit {p.returncode}: {p.stderr.strip()[-600:]}")
        return 1
    md = open(os.path.join(run, "results.md")).read()
    t1 = md.split("## Table 1", 1)[1].split("## Table 2", 1)[0]
    t5 = md.split("## Table 5", 1)[1].split("## Table 6", 1)[0]
    raw5 = next(ln for ln in t5.splitlines() if ln.startswith("| raw |")).split("|")
    ok1 = "MS's clip similarity: CLIP image embeddings" in t1 and re.search(r"\| raw \| [0-9.]+ \|", t1)
    ok5 = "CLIP text embeddings of the label names" in t5.splitlines()[0] and re.match(r" [0-9.]+ ", raw5[2])
    note = next((ln for ln in t1.splitlines() if ln.startswith("MS's")), "(no line on MS's similarity)")
    print(f"{'ok  ' if ok1 else 'FAIL'} stsae run: Table 1: {note}")
    print(f"{'ok  ' if ok5 else 'FAIL'} stsae run: Table 5 on CLIP's label embeddings, raw R@1 {raw5[2].strip()}")
    return (not ok1) + (not ok5)


def extract_inputs(a, work, model_dir):
    """The synthetic videos (labels in SSv2's bracket form), their raw frames (check-video's
    ImageNet-normalised pixels at the native 48 px, where resize and crop are the identity,
    mapped back to uint8) and the label queries: a reference job for the extract suite."""
    run = os.path.join(work, "extract")
    os.makedirs(run)
    deck = os.path.join(run, "deck.yaml")
    open(deck, "w").write(EXTRACT_DECK.format(run=run, clip=model_dir, clips=6))
    p = subprocess.run([a.stsae, "synth", deck], capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"FAIL: stsae synth: {p.stderr[-500:]}")
    csv_path = os.path.join(run, "data", "clips.csv")
    lines = open(csv_path).read().splitlines()
    lines = [lines[0]] + [ln.replace("something", "[something]").replace("Something", "[Something]") for ln in lines[1:]]
    open(csv_path, "w").write("\n".join(lines) + "\n")
    pix = os.path.join(run, "pix.h5")
    p = subprocess.run([a.stsae, "check-video", csv_path, pix, "--preset", "videomae", "--size", "48", "--short", "48",
                        "--frames", "4"], capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"FAIL: stsae check-video: {p.stderr[-500:]}")
    with h5py.File(pix) as f:
        px = f["pixels"][()]
        names = [n.decode() for n in f["label_names"][()]]
    mean = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
    std = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]
    raw = (px * std + mean) * 255.0
    assert np.abs(raw - np.round(raw)).max() < 1e-3, "check-video's pixels are not the raw frames"
    frames = np.round(raw).astype(np.uint8).transpose(0, 1, 3, 4, 2)  # [clips, T, h, w, 3]
    queries = [n.replace("[", "").replace("]", "") for n in names]
    npz = os.path.join(run, "ref_in.npz")
    np.savez(npz, pixels=np.zeros((0,), np.float32), texts=np.array(queries), frames=frames)
    return deck, names, {"dir": model_dir, "in": npz, "out": os.path.join(run, "ref_out.npz")}


def extract_suite(a, stsae, deck, names, plant=None):
    """extract.clip on 1 and 3 ranks: /clip_embeddings and /text_embeddings against transformers."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    if plant:
        env["STSAE_PLANT"] = plant
    run = os.path.dirname(deck)
    mpirun = [a.mpirun, "-np"]
    fails = 0
    if not plant:  # a deck that both imports and computes the embeddings: one error naming the key, every rank
        p = subprocess.run(mpirun + ["2"] + a.mpi_flags.split() + [stsae, "extract", deck, "extract.out=bad.h5",
                           "extract.text_embeddings=emb.h5"], capture_output=True, text=True, env=env)
        errs = [ln for ln in p.stderr.splitlines() if "extract.clip computes /text_embeddings" in ln]
        ok = p.returncode == 1 and errs and errs[0].startswith(deck + ":") and \
            not os.path.exists(os.path.join(run, "bad.h5"))
        print(f"{'ok  ' if ok else 'FAIL'} extract.clip with extract.text_embeddings: exit {p.returncode}: "
              f"{errs[0] if errs else p.stderr.strip()[-300:]}")
        fails += not ok
    files = {}
    for np_ in (3,) if plant else (1, 3):
        out = f"f{np_}.h5"
        if os.path.exists(os.path.join(run, out)):
            os.remove(os.path.join(run, out))
        p = subprocess.run(mpirun + [str(np_)] + a.mpi_flags.split() +
                           [stsae, "extract", deck, f"extract.out={out}"], capture_output=True, text=True, env=env)
        if p.returncode:
            print(f"FAIL extract with extract.clip on {np_} ranks: exit {p.returncode}: {p.stderr.strip()[-600:]}")
            return fails + 1
        with h5py.File(os.path.join(run, out)) as f:
            files[np_] = {k: f[k][()] for k in ("clip_embeddings", "text_embeddings", "label_names")}
            files[np_]["digest"] = f.attrs["clip_weights_digest"]
    if not plant:
        same = all(np.array_equal(files[1][k], files[3][k]) for k in ("clip_embeddings", "text_embeddings"))
        print(f"{'ok  ' if same else 'FAIL'} extract.clip: 1 and 3 ranks write the same embeddings")
        fails += not same
    ref = np.load(os.path.join(run, "ref_out.npz"))
    got = files[3]
    fails += not compare("extract.clip /clip_embeddings (mean of unit frame embeddings, CLIPImageProcessorPil)",
                         got["clip_embeddings"], ref["clip_embeddings"])
    fails += not compare(f"extract.clip /text_embeddings of the label names, brackets removed ({names[0]!r})",
                         got["text_embeddings"], ref["text_embeddings"])
    digest_ok = str(got["digest"]).startswith("fnv1a64:")
    print(f"{'ok  ' if digest_ok else 'FAIL'} extract.clip: attribute clip_weights_digest {got['digest']}")
    fails += not digest_ok
    return fails


def bad_suite(a, work, models):
    base = models["A"]
    spec = MODELS["A"]
    S = spec["vision"]["image_size"]
    good_px = np.zeros((2, 3, S, S), np.float32)

    def variant(tag, edit):
        d = os.path.join(work, "bad_" + tag)
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(base, d)
        edit(d)
        return d

    def edit_tensors(fn):
        def edit(d):
            path = os.path.join(d, "model.safetensors")
            t, meta = read_safetensors(path)
            fn(t)
            write_safetensors(path, t, meta)
        return edit

    def edit_config(fn):
        def edit(d):
            path = os.path.join(d, "config.json")
            c = json.load(open(path))
            fn(c)
            json.dump(c, open(path, "w"))
        return edit

    def write_file(name, text):
        def edit(d):
            open(os.path.join(d, name), "w").write(text)
        return edit

    def cut_merges(keep_lines, tail=""):
        def edit(d):
            path = os.path.join(d, "merges.txt")
            lines = open(path, encoding="utf-8").read().split("\n")
            open(path, "w", encoding="utf-8").write("\n".join(lines[:keep_lines]) + ("\n" + tail if tail else "\n"))
        return edit

    def swap_shape(t):
        dt, shape, blob = t["visual_projection.weight"]
        t["visual_projection.weight"] = (dt, shape[::-1], blob)

    def more_layers(c):
        c["text_config"]["num_hidden_layers"] = 9

    def relu(c):
        c["vision_config"]["hidden_act"] = "relu"

    def not_clip(c):
        c["model_type"] = "siglip"

    cases = [  # (name, directory, IN.h5 contents, substrings of the one error line)
        ("missing tensor", variant("missing", edit_tensors(lambda t: t.pop("text_projection.weight"))),
         (good_px, ["a"]), ["model.safetensors", "text_projection.weight"]),
        ("wrong shape", variant("shape", edit_tensors(swap_shape)), (good_px, ["a"]),
         ["model.safetensors", "visual_projection.weight", "shape"]),
        ("bad JSON", variant("json", write_file("config.json", '{"model_type": "clip", ')), (good_px, ["a"]),
         ["config.json", "JSON"]),
        ("not CLIP", variant("type", edit_config(not_clip)), (good_px, ["a"]), ["config.json", "model_type", "siglip"]),
        ("unsupported activation", variant("act", edit_config(relu)), (good_px, ["a"]),
         ["config.json", "vision_config.hidden_act", "relu"]),
        ("more layers claimed", variant("layers", edit_config(more_layers)), (good_px, ["a"]),
         ["model.safetensors", "text_model.encoder.layers.8", "num_hidden_layers 9"]),
        ("truncated merges", variant("merges_cut", cut_merges(20000)), (good_px, ["a"]),
         ["merges.txt", "truncated"]),
        ("malformed merges line", variant("merges_line", cut_merges(100, "abc")), (good_px, ["a"]),
         ["merges.txt", "line 101"]),
        ("merge of unknown symbols", variant("merges_unknown", cut_merges(100, "qqq zzz")), (good_px, ["a"]),
         ["merges.txt", "line 101", "vocab.json"]),
        ("vocab.json missing", variant("novocab", lambda d: os.remove(os.path.join(d, "vocab.json"))),
         (good_px, ["a"]), ["vocab.json", "No such file"]),
        ("vocab.json not an object", variant("vocab_list", write_file("vocab.json", "[1, 2, 3]")), (good_px, ["a"]),
         ["vocab.json", "object"]),
        ("pixels of another size", base, (np.zeros((1, 3, S + 8, S + 8), np.float32), None),
         [base, "image_size", str(S)]),
        ("no inputs", base, (None, None), ["in.h5", "neither"]),
        ("text not UTF-8", base, (None, "raw"), ["/texts[1]", "UTF-8"]),
    ]
    fails = 0
    for name, mdir, (px, texts), want in cases:
        inp, out = os.path.join(work, "bad_in.h5"), os.path.join(work, "bad_out.h5")
        for path in (inp, out):
            if os.path.exists(path):
                os.remove(path)
        if texts == "raw":
            write_input(inp, px, None, raw_texts=[b"fine", b"bad \xff\xfe byte"])
        else:
            write_input(inp, px, texts)
        p = run_stsae(a.stsae, mdir, inp, out)
        err = p.stderr.strip()
        ok = (p.returncode == 1 and len(err.splitlines()) == 1 and all(w in err for w in want)
              and not os.path.exists(out))
        print(f"{'ok  ' if ok else 'FAIL'} bad: {name}: exit {p.returncode}: {err[-300:]}")
        fails += not ok
    return fails


def planted_faults(a, work):
    """Each planted fault must fail the reference or extract checks (the models, inputs and
    references of a finished --suite all run in work)."""
    if not os.path.exists(os.path.join(work, "references-made")):
        print(f"skipped: no models and references in {work} (the test clip_reference makes them)")
        return SKIP
    models = {name: os.path.join(work, f"clip_{name}") for name in MODELS}
    texts, deck = all_texts(), os.path.join(work, "extract", "deck.yaml")
    with h5py.File(os.path.join(work, "extract", "pix.h5")) as f:
        names = [n.decode() for n in f["label_names"][()]]
    fails = 0
    for plant in a.plants.split(","):
        print(f"--- planted fault {plant} (stsae-planted): the checks must fail")
        caught = reference_suite(a.planted, work, models, texts, plant) + \
            extract_suite(a, a.planted, deck, names, plant) > 0
        print(f"{'ok  ' if caught else 'FAIL'} planted {plant}: {'caught' if caught else 'NOT caught'}")
        fails += not caught
    print(f"{'FAILED' if fails else 'passed'}: {fails} planted fault(s) not caught")
    return 1 if fails else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stsae", required=True)
    ap.add_argument("--venv", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--suite", default="all", choices=["reference", "extract", "bad", "all"])
    ap.add_argument("--mpirun", default="mpirun")
    ap.add_argument("--mpi-flags", default="--oversubscribe")
    ap.add_argument("--planted", help="stsae-planted: with --plants, each fault must fail the reference suite")
    ap.add_argument("--plants", default="", help="comma-separated STSAE_PLANT names")
    ap.add_argument("--reuse", action="store_true",
                    help="only the planted faults, on the models and references a finished run left in --workdir")
    a = ap.parse_args()
    a.stsae = os.path.abspath(a.stsae)
    a.planted = os.path.abspath(a.planted) if a.planted else None
    if a.reuse:
        return planted_faults(a, os.path.abspath(a.workdir))
    venv = os.path.abspath(a.venv)
    py, why = venv_python(venv, "sae_lens", "sae-lens")
    if py and subprocess.run([py, "-c", "import transformers"], capture_output=True).returncode:
        py, why = None, f"transformers does not import in {venv}"
    if not py:
        print(f"skipped: {why}")
        return SKIP
    files, why = clip_vocabulary(py, os.path.join(venv, "stsae-data"))
    if not files:
        print(f"skipped: {why}; to run this test: {py} -m pip download --no-deps -d {venv}/stsae-data open_clip_torch")
        return SKIP
    work = os.path.abspath(a.workdir)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    models, jobs = {}, []
    texts, ref_jobs = reference_inputs(work) if a.suite in ("reference", "all") else (None, {})
    if a.suite in ("extract", "all"):
        deck, names, extract_job = extract_inputs(a, work, os.path.join(work, "clip_A"))
    for name, spec in MODELS.items():
        d = os.path.join(work, f"clip_{name}")
        os.makedirs(d)
        open(os.path.join(d, "vocab.json"), "w", encoding="utf-8").write(files[0])
        open(os.path.join(d, "merges.txt"), "w", encoding="utf-8").write(files[1])
        if "tokenizer_config" in spec:
            json.dump(spec["tokenizer_config"], open(os.path.join(d, "tokenizer_config.json"), "w"))
        models[name] = d
        jobs.append(dict(dir=d, spec=spec, **ref_jobs.get(name, {})))
    if a.suite in ("extract", "all"):
        jobs.append(extract_job)  # after model A is made
    json.dump(jobs, open(os.path.join(work, "jobs.json"), "w"))
    p = subprocess.run([py, os.path.join(HERE, "ref", "clip_ref.py"), os.path.join(work, "jobs.json")],
                       capture_output=True, text=True)
    if p.returncode:
        print(f"FAIL: the models or references by transformers: {p.stderr.strip()[-800:]}")
        return 1
    if a.suite == "all":
        open(os.path.join(work, "references-made"), "w").write("for --reuse\n")
    fails = 0
    if a.suite in ("reference", "all"):
        fails += reference_suite(a.stsae, work, models, texts)
    if a.suite in ("extract", "all"):
        fails += extract_suite(a, a.stsae, deck, names)
        fails += run_suite(a, work, models["A"])
    if a.plants and a.suite == "all":
        fails += planted_faults(a, work)
    if a.suite in ("bad", "all"):
        fails += bad_suite(a, work, models)
    print(f"{'FAILED' if fails else 'passed'}: {fails} failure(s)")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
