"""`stsae extract` end to end on real encoded videos from `stsae synth`
(pixels backbone), and `stsae run` on a reduced demo deck:

  ranks    1 and 3 ranks write identical feature files; h5py reads the file as
           SPEC §3 says (float16 [clips, T, N, d], one clip per chunk, labels,
           split, clip_ids, label_names, done, attributes); the features equal
           a numpy patchify of `stsae check-video`'s preprocessed pixels (the
           pixels backbone's definition) to float16 rounding.
  resume   a run killed with SIGKILL mid-way (after some clips are done), one
           stopped by a stop file there at its start, and one stopped by
           SIGUSR1 sent to its ranks (exit 3; mpirun started with the signals
           blocked, so that it passes none on), started again compute only
           the clips not done and end with the same file as an uninterrupted
           run; the stop file is removed by the run it stopped.
  corrupt  a truncated video and a missing one are named on stderr, marked in
           /failed, skipped; the file is complete without them.
  vit      tiny random DINOv2 and VideoMAE checkpoints (Hugging Face layout)
           through `stsae extract` on 2 ranks: every layer equals an
           independent float64 PyTorch forward (tests/ref/backbone_ref.py) of
           `check-video`'s preprocessed pixels with the model's preset, to
           float16 rounding; the weights digest is the file's. With
           --stsae-emu (the program on the CUDA emulation), the same extract
           with device: cuda (the ViTs on the GPU, fp32 GEMMs) on 2 ranks:
           the same check against the same reference.
  datasets the same synthetic videos laid out as Something-Something v2 (an
           annotation JSON with templates, labels.json, VIDEOS/<id>.webm) and as
           Kinetics-400 (its CSV, VIDEOS/<id>_<start>_<end>.mp4): extract finds
           every clip, labels them by the dataset's rules, and writes the same
           features as from the plain CSV.
  demo     `stsae run inputs/demo.yaml` shrunk (fewer, smaller clips, two
           epochs) on 2 ranks: results.csv has every SPEC §6 column, results.md
           and the plots exist.
"""
import argparse
import csv
import glob
import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "ref"))
from procs import block_stop_signals, kill_session, signal_ranks  # noqa: E402

DECK = """run_dir: {run}
synth: {{out: data, clips: {clips}, frames: {frames}, size: {size}, seed: 3}}
extract:
  input: {{csv: data/clips.csv}}
  backbone: pixels
  layers: [0, 2]
  frames: 6
  image_size: 32
  patch: 8
  batch_clips: 2
  out: features.h5
"""

SPEC_COLUMNS = ("job variant lambda tau high_frac seed r2 r2_clip lag1 frac_lag1_below_0.3 ms purity_mean "
                "purity_max probe probe_recon probe_high l0 dead_frac jaccard ablate_top_10 ablate_top_50 "
                "ablate_top_100 ablate_top_500 ablate_rand_10 ablate_rand_50 ablate_rand_100 ablate_rand_500 "
                "r_at_1 r_at_5 train_tokens_per_s").split()


class Env:
    def __init__(self, a, stsae=None):
        self.a = a
        self.stsae = stsae or a.stsae
        self.env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1",
                        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")

    def cmd(self, np_, *args):
        return [self.a.mpirun, "-np", str(np_)] + self.a.mpi_flags.split() + [self.stsae] + list(args)

    def run(self, np_, *args, check=True):
        p = subprocess.run(self.cmd(np_, *args), env=self.env, capture_output=True, text=True, timeout=900)
        if check and p.returncode:
            print(p.stdout[-3000:], p.stderr[-3000:])
            raise SystemExit(f"FAIL: stsae {' '.join(args)} on {np_} ranks exited {p.returncode}")
        return p


def synth(e, w, clips, frames=12, size=48):
    deck = os.path.join(w, "deck.yaml")
    open(deck, "w").write(DECK.format(run=w, clips=clips, frames=frames, size=size))
    e.run(1, "synth", deck)
    return deck


def same_files(a, b):
    with h5py.File(a) as x, h5py.File(b) as y:
        keys = []
        x.visit(lambda k: keys.append(k) if isinstance(x[k], h5py.Dataset) else None)
        return all(np.array_equal(x[k][...], y[k][...]) for k in keys) and \
            all(np.array_equal(x.attrs[k], y.attrs[k]) for k in x.attrs)


def case_ranks(e, w):
    deck = synth(e, w, 10)
    fails = 0
    # embeddings to import: one text vector per label name, one clip vector per clip
    with open(f"{w}/data/clips.csv") as f:
        n_labels = len({line.split(",")[1] for line in f.read().splitlines()[1:] if line})
    text = np.random.default_rng(1).standard_normal((n_labels, 5)).astype(np.float32)
    clipe = np.random.default_rng(2).standard_normal((10, 3)).astype(np.float32)
    with h5py.File(f"{w}/emb.h5", "w") as f:
        f["text_embeddings"] = text
        f["clip_embeddings"] = clipe
    with open(deck, "a") as f:
        f.write("  text_embeddings: emb.h5\n  clip_embeddings: emb.h5\n")
    e.run(1, "extract", deck, "extract.out=f1.h5")
    e.run(3, "extract", deck, "extract.out=f3.h5")
    ok = same_files(f"{w}/f1.h5", f"{w}/f3.h5")
    print(f"{'ok  ' if ok else 'FAIL'} 1 and 3 ranks: identical feature files")
    fails += not ok
    with h5py.File(f"{w}/f3.h5") as f:
        ds = f["features/layer_00"]
        checks = {
            "float16 [clips, T, N, d]": ds.dtype == np.float16 and ds.shape == (10, 6, 16, 192),
            "one clip per chunk": ds.chunks == (1, 6, 16, 192),
            "both layers": "layer_02" in f["features"],
            "labels, split, done, failed": f["labels"].shape == (10,) and f["split"].dtype == np.uint8
            and f["done"][...].all() and not f["failed"][...].any(),
            "clip_ids and label_names are strings": f["clip_ids"][0].decode().endswith(".mp4")
            and f["label_names"][0].decode() != "" and f["labels"][...].max() < len(f["label_names"]),
            "attributes": all(k in f.attrs for k in ("backbone", "weights_digest", "layers", "T", "H", "W", "N", "d",
                                                      "frame_sampling", "stsae_version")),
            "imported /text_embeddings, /clip_embeddings": np.array_equal(f["text_embeddings"][...], text)
            and np.array_equal(f["clip_embeddings"][...], clipe),
        }
        feats = ds[...].astype(np.float64)
    for k, v in checks.items():
        print(f"{'ok  ' if v else 'FAIL'} h5py: {k}")
        fails += not v
    # the pixels backbone by its definition, from the preprocessed pixels
    p = subprocess.run([e.a.stsae, "check-video", f"{w}/data/clips.csv", f"{w}/pix.h5", "--size", "32", "--short",
                        "32", "--filter", "bilinear", "--frames", "6"], capture_output=True, text=True)
    if p.returncode:
        print(p.stderr)
        return fails + 1
    with h5py.File(f"{w}/pix.h5") as f:
        px = f["pixels"][...].astype(np.float64)  # [clips, T, 3, 32, 32]
    c, T = px.shape[:2]
    tok = px.reshape(c, T, 3, 4, 8, 4, 8).transpose(0, 1, 3, 5, 2, 4, 6).reshape(c, T, 16, 192)
    err = np.abs(tok - feats).max() / np.abs(tok).max()
    ok = err <= 1e-3  # float16 storage
    print(f"{'ok  ' if ok else 'FAIL'} pixels features = patchified preprocessed frames (max rel err {err:.1e})")
    fails += not ok
    # the preprocessed-pixels input (SPEC §4) gives the same features, labels and split
    open(f"{w}/pix.yaml", "w").write(open(deck).read().replace("input: {csv: data/clips.csv}", "input: {pixels: pix.h5}"))
    e.run(2, "extract", f"{w}/pix.yaml", "extract.out=fp.h5")
    with h5py.File(f"{w}/fp.h5") as a_, h5py.File(f"{w}/f1.h5") as b_:
        ok = all(np.array_equal(a_[k][...], b_[k][...]) for k in
                 ("features/layer_00", "features/layer_02", "labels", "split"))
    print(f"{'ok  ' if ok else 'FAIL'} extract from the pixels HDF5 input = from the videos")
    fails += not ok
    # a pixels file of other frames than the deck asks: one message, every rank stops, nothing written
    p = e.run(3, "extract", f"{w}/pix.yaml", "extract.out=fp8.h5", "extract.frames=8", check=False)
    ok = p.returncode != 0 and p.stderr.count("/pixels holds 6 frames of 32 px; the deck asks T_in = 8") == 1 \
        and not glob.glob(f"{w}/fp8.h5*")
    print(f"{'ok  ' if ok else 'FAIL'} pixels input of other frames: exit {p.returncode}, one message, no file")
    fails += not ok
    # hostile /labels and /split beside good /pixels: one message naming the file and object, nothing written
    for what, edit, needle in (("short /labels", lambda f: f.create_dataset("labels", data=f["lab0"][:-1]),
                                "/labels has"),
                               ("a label 2.5", lambda f: f.create_dataset("labels", data=np.where(
                                   np.arange(len(f["lab0"])) == 1, 2.5, f["lab0"][...]).astype(np.float32)),
                                "/labels[1] = 2.5"),
                               ("a split 7", lambda f: (f.create_dataset("labels", data=f["lab0"][...]),
                                                        f.__delitem__("split"),
                                                        f.create_dataset("split", data=np.full(len(f["lab0"]), 7,
                                                                                               np.uint8))),
                                "/split[0] = 7")):
        shutil.copy(f"{w}/pix.h5", f"{w}/pixbad.h5")
        with h5py.File(f"{w}/pixbad.h5", "a") as f:
            f["lab0"] = f["labels"][...]
            del f["labels"]
            edit(f)
        open(f"{w}/pixbad.yaml", "w").write(open(f"{w}/pix.yaml").read().replace("pix.h5", "pixbad.h5"))
        p = e.run(3, "extract", f"{w}/pixbad.yaml", "extract.out=fbad.h5", check=False)
        ok = p.returncode != 0 and p.stderr.count(needle) == 1 and "pixbad.h5" in p.stderr \
            and not glob.glob(f"{w}/fbad.h5*")
        print(f"{'ok  ' if ok else 'FAIL'} pixels input with {what}: exit {p.returncode}, one message, no file"
              + ("" if ok else f"\n{p.stderr[-800:]}"))
        fails += not ok
    return fails


def case_resume(e, w):
    deck = synth(e, w, 240, frames=32, size=128)  # slow enough to kill mid-way
    e.run(2, "extract", deck, "extract.out=ref.h5")
    fails = 0
    # one clip per rank and round: many rounds, each flushed, to kill between
    p = subprocess.Popen(e.cmd(2, "extract", deck, "extract.out=killed.h5", "extract.batch_clips=1"), env=e.env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    part, killed_at = f"{w}/killed.h5.partial", None
    t0 = time.time()
    while time.time() - t0 < 120 and p.poll() is None:
        try:
            with h5py.File(part, "r", locking=False) as f:
                n = int(f["done"][...].sum())
            if 2 <= n < 200:
                kill_session(p.pid)
                killed_at = n
                break
        except (OSError, KeyError):
            pass
        time.sleep(0.01)
    p.wait()
    if killed_at is None:
        print("FAIL: could not kill the run mid-way (it finished or never started)")
        return 1
    out = e.run(2, "extract", deck, "extract.out=killed.h5").stdout
    todo = next((l for l in out.splitlines() if "to do" in l), "")
    ok = "resuming" in todo
    print(f"{'ok  ' if ok else 'FAIL'} killed with at least {killed_at}/240 clips done; rerun: {todo.strip()}")
    fails += not ok
    ok = same_files(f"{w}/ref.h5", f"{w}/killed.h5")
    print(f"{'ok  ' if ok else 'FAIL'} killed and resumed = uninterrupted (identical files)")
    fails += not ok
    # Stop requests with no help from the launcher (mpirun started with SIGUSR1
    # and SIGTERM blocked passes neither on): the round under way is written,
    # exit 3, the partial file stays, a rerun finishes it.
    # (1) a stop file there at the start: one round, then the stop
    stop = os.path.join(w, "STOP")
    q = subprocess.run([e.a.stsae, "stop", deck], capture_output=True, text=True)
    ok = q.returncode == 0 and os.path.exists(stop)
    p = subprocess.run(e.cmd(2, "extract", deck, "extract.out=stop.h5"), env=e.env, capture_output=True, text=True,
                       timeout=900, preexec_fn=block_stop_signals)
    with h5py.File(f"{w}/stop.h5.partial", "r", locking=False) as f:
        n_done = int(f["done"][...].sum())
    ok = ok and p.returncode == 3 and "stopped on request" in p.stdout and not os.path.exists(stop) \
        and 0 < n_done < 240
    print(f"{'ok  ' if ok else 'FAIL'} stop file: exit {p.returncode}, {n_done} clips done, partial file kept, "
          f"stop file {'still there' if os.path.exists(stop) else 'removed'}")
    fails += not ok
    e.run(2, "extract", deck, "extract.out=stop.h5")
    ok = same_files(f"{w}/ref.h5", f"{w}/stop.h5")
    print(f"{'ok  ' if ok else 'FAIL'} stopped by the stop file and resumed = uninterrupted (identical files)")
    fails += not ok
    # (2) SIGUSR1 to the ranks themselves, mid-way
    p = subprocess.Popen(e.cmd(2, "extract", deck, "extract.out=sig.h5", "extract.batch_clips=1"), env=e.env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         preexec_fn=block_stop_signals)
    t0 = time.time()
    while time.time() - t0 < 120 and p.poll() is None:  # until a few clips are done
        try:
            with h5py.File(f"{w}/sig.h5.partial", "r", locking=False) as f:
                if int(f["done"][...].sum()) >= 2:
                    break
        except (OSError, KeyError):
            pass
        time.sleep(0.005)
    n = signal_ranks(p.pid, e.a.stsae, signal.SIGUSR1)
    out, _ = p.communicate(timeout=300)
    ok = n == 2 and p.returncode == 3 and "stopped on request" in out and os.path.exists(f"{w}/sig.h5.partial")
    print(f"{'ok  ' if ok else 'FAIL'} SIGUSR1 to the {n} ranks: exit {p.returncode}, partial file kept")
    fails += not ok
    e.run(2, "extract", deck, "extract.out=sig.h5")
    ok = same_files(f"{w}/ref.h5", f"{w}/sig.h5")
    print(f"{'ok  ' if ok else 'FAIL'} stopped by SIGUSR1 and resumed = uninterrupted (identical files)")
    return fails + (not ok)


def case_corrupt(e, w):
    deck = synth(e, w, 8)
    vids = sorted(glob.glob(f"{w}/data/videos/*"))
    with open(vids[2], "r+b") as f:
        f.truncate(200)
    os.remove(vids[5])
    p = e.run(3, "extract", deck)
    fails = 0
    for v in (vids[2], vids[5]):
        named = os.path.basename(v) in p.stderr
        print(f"{'ok  ' if named else 'FAIL'} {os.path.basename(v)} named on stderr")
        fails += not named
    with h5py.File(f"{w}/features.h5") as f:
        failed, done = f["failed"][...], f["done"][...]
    ok = list(np.nonzero(failed)[0]) == [2, 5] and list(np.nonzero(done == 0)[0]) == [2, 5]
    print(f"{'ok  ' if ok else 'FAIL'} /failed marks clips {list(np.nonzero(failed)[0])}, the others are done")
    fails += not ok
    # the finished file with a deck that now asks other layers: an error, not "nothing to do"
    p = e.run(3, "extract", deck, "extract.layers=[1]", check=False)
    ok = p.returncode == 1 and p.stderr.count("made for other layers") == 1
    print(f"{'ok  ' if ok else 'FAIL'} finished file, other layers asked: exit {p.returncode}, "
          f"{p.stderr.strip().splitlines()[0] if p.stderr.strip() else '(no message)'}")
    return fails + (not ok)


def case_vit(e, w):
    from backbone_ref import dinov2_config, fnv1a64, forward, random_weights, videomae_config, write_model
    deck = synth(e, w, 4, frames=16, size=64)
    fails = 0
    models = {
        "dinov2": dinov2_config(hidden=32, layers=3, heads=4, patch=14, image=70),
        "videomae": videomae_config(hidden=32, layers=3, heads=4, intermediate=64, patch=16, image=224, frames=8),
    }
    for name, cfg in models.items():
        tensors = random_weights(cfg, seed=7)
        mdir = os.path.join(w, name)
        write_model(mdir, cfg, tensors)
        out = f"{w}/{name}.h5"
        e.run(2, "extract", deck, f"extract.backbone={mdir}", "extract.layers=[0,2]", "extract.frames=8",
              f"extract.out={out}", "extract.final_norm=true")
        outs = [(out, "CPU")]
        if e.a.stsae_emu:
            gpu = Env(e.a, e.a.stsae_emu)
            p = gpu.run(2, "extract", deck, f"extract.backbone={mdir}", "extract.layers=[0,2]", "extract.frames=8",
                        f"extract.out={w}/{name}_gpu.h5", "extract.final_norm=true", "device=cuda",
                        "extract.gpu_math=fp32")
            if "extract: device cuda: the backbone forward on each rank's GPU" not in p.stdout:
                print("FAIL: no device line in extract's output:\n" + p.stdout[-2000:])
                fails += 1
            outs.append((f"{w}/{name}_gpu.h5", "GPU"))
        p = subprocess.run([e.a.stsae, "check-video", f"{w}/data/clips.csv", f"{w}/pix_{name}.h5", "--preset", name,
                            "--frames", "8"], capture_output=True, text=True)
        if p.returncode:
            print(p.stderr)
            return fails + 1
        with h5py.File(f"{w}/pix_{name}.h5") as f:
            px = f["pixels"][...]
        ref = forward(cfg, tensors, px, [0, 2], final_norm=True)
        for path, where in outs:
            with h5py.File(path) as f:
                for layer in (0, 2):
                    got = f[f"features/layer_{layer:02d}"][...].astype(np.float64)
                    want = ref[layer].numpy()
                    err = np.abs(got - want).max() / np.abs(want).max()
                    ok = got.shape == want.shape and err <= 2e-3  # float16 storage
                    print(f"{'ok  ' if ok else 'FAIL'} {name} layer {layer} ({where}): {got.shape}, max rel err "
                          f"{err:.1e} against the float64 PyTorch forward")
                    fails += not ok
                digest = f.attrs["weights_digest"]
                digest = digest.decode() if isinstance(digest, bytes) else digest
                ok = digest == fnv1a64(os.path.join(mdir, "model.safetensors")) and \
                    f.attrs["backbone"] in (name, name.encode())
                print(f"{'ok  ' if ok else 'FAIL'} {name} ({where}): backbone and weights digest attributes")
                fails += not ok
    return fails


def case_datasets(e, w):
    import json
    deck = synth(e, w, 6)
    e.run(1, "extract", deck, "extract.out=csv.h5")
    rows = [l.split(",") for l in open(f"{w}/data/clips.csv").read().splitlines()[1:] if l]
    fails = 0
    # SSv2: ids, templates with [something], labels.json {template: "index"}
    os.makedirs(f"{w}/ssv2/videos")
    names = sorted({r[1] for r in rows})
    labels = {n: str(i) for i, n in enumerate(names)}
    ann = []
    for i, (path, name, split) in enumerate(rows):
        shutil.copy(f"{w}/data/{path}", f"{w}/ssv2/videos/{1000 + i}.webm")
        ann.append({"id": str(1000 + i), "label": name.lower(), "template": name.replace("something", "[something]"),
                    "placeholders": ["thing"]})
    json.dump(ann, open(f"{w}/ssv2/train.json", "w"))
    json.dump(labels, open(f"{w}/ssv2/labels.json", "w"))
    # K400: label,youtube_id,time_start,time_end,split and <id>_<start:06d>_<end:06d>.mp4
    os.makedirs(f"{w}/k400/videos")
    with open(f"{w}/k400/train.csv", "w") as f:
        f.write("label,youtube_id,time_start,time_end,split\n")
        for i, (path, name, split) in enumerate(rows):
            shutil.copy(f"{w}/data/{path}", f"{w}/k400/videos/yt{i:04d}_{10 * i:06d}_{10 * i + 10:06d}.mp4")
            f.write(f"{name},yt{i:04d},{10 * i},{10 * i + 10},{'train' if split == 'train' else 'val'}\n")
    base = open(deck).read()
    for ds, inp in (("ssv2", f"{{ssv2: {{videos: ssv2/videos, annotations: ssv2/train.json, labels: ssv2/labels.json}}}}"),
                    ("k400", f"{{k400: {{videos: k400/videos, csv: k400/train.csv}}}}")):
        dk = f"{w}/{ds}.yaml"
        open(dk, "w").write(base.replace("input: {csv: data/clips.csv}", f"input: {inp}"))
        p = e.run(2, "extract", dk, f"extract.out={ds}.h5", check=False)
        if p.returncode:
            print(p.stderr[-2000:])
            fails += 1
            continue
        with h5py.File(f"{w}/{ds}.h5") as a_, h5py.File(f"{w}/csv.h5") as b_:
            same = np.array_equal(a_["features/layer_00"][...], b_["features/layer_00"][...])
            lab = [a_["label_names"][k].decode() for k in a_["labels"][...]]
            want = [r[1] for r in rows]
            ok = same and lab == want and a_["done"][...].all()
        print(f"{'ok  ' if ok else 'FAIL'} {ds}: 6 clips found, labelled as the dataset says, same features as the CSV")
        fails += not ok
    return fails


def case_demo(e, w):
    over = [f"run_dir={w}/demo", "synth.clips=42", "synth.frames=12", "synth.size=64", "extract.frames=6",
            "extract.image_size=32", "extract.patch=8", "train.epochs=2", "train.expansion=1", "train.k=8",
            "train.k_aux=32", "train.batch_tokens=192", "train.batch_clips=2", "train.batch_pairs=96"]
    p = e.run(2, "run", e.a.deck, *over)
    fails = 0
    rows = list(csv.DictReader(open(f"{w}/demo/results.csv")))
    missing = [c for c in SPEC_COLUMNS if c not in rows[0]]
    ok = not missing and len(rows) == 13 and rows[0]["job"] == "raw"  # raw + 12 jobs
    print(f"{'ok  ' if ok else 'FAIL'} demo: results.csv has {len(rows)} rows, missing columns {missing}")
    fails += not ok
    filled = all(r["r2"] and r["probe"] and r["lag1"] for r in rows[1:])
    print(f"{'ok  ' if filled else 'FAIL'} demo: every job has r2, probe and lag1")
    fails += not filled
    plots = sorted(os.listdir(f"{w}/demo/plots"))
    ok = os.path.exists(f"{w}/demo/results.md") and "frontier.png" in plots and "results.md" in p.stdout
    print(f"{'ok  ' if ok else 'FAIL'} demo: results.md, plots {plots}, and where they are printed")
    return fails + (not ok)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stsae", required=True)
    ap.add_argument("--mpirun", default="mpirun")
    ap.add_argument("--mpi-flags", default="--oversubscribe")
    ap.add_argument("--deck", help="inputs/demo.yaml (case demo)")
    ap.add_argument("--case", required=True, choices=["ranks", "resume", "corrupt", "vit", "datasets", "demo"])
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--stsae-emu", help="stsae on the CUDA emulation (case vit: also device: cuda)")
    a = ap.parse_args()
    w = os.path.abspath(os.path.join(a.workdir, a.case))
    shutil.rmtree(w, ignore_errors=True)
    os.makedirs(w)
    fails = globals()["case_" + a.case](Env(a), w)
    print(f"{a.case}: {'FAILED' if fails else 'passed'}")
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
