#!/usr/bin/python3
"""`stsae browse` (run by `stsae report`): the static HTML feature browser of
a run, against references written here, and in a real browser.

  test_browse.py --stsae BIN --workdir DIR --case data|chromium

Both cases first make a small run from videos: the synthetic set (70 clips
of 16 frames), the motion backbone (4 x 4 patches, T = 8 steps), two jobs
(standard and temporal+M, which BatchTopK's threshold encodes), eval and
report with report.browse_latents: 5.

data: what the pages say, recomputed with numpy from model.h5 and the
  feature file (encode: ReLU of the pre-activations, then TopK, or BatchTopK's
  threshold theta; tokens whose membership is within 1e-4 of the selection
  boundary, where float32 and float64 may choose otherwise, are left out):
  - every page exists (run, compare, one per job, one per latent page chosen:
    the live latents with the largest mean clip value), every link and
    picture resolves to a file in the browser, nothing is fetched from a
    network;
  - the job table: one row per live latent (fires on a test token), its
    frequency and mean activation (numpy), lag-1, MS and mean clip value
    (results.h5), purity and dominant label (numpy, from the top-8 clips);
  - each latent page: its top clips in eval's order; per clip the timeline
    (the value at the peak patch per step, the largest over the patches)
    within 1e-4; the heat map PNG pixel by pixel (opacity and colour of the
    documented scale, the page's largest value as its top) within 2 levels;
    the frames JPEG's size; the nearest latents by decoder cosine (ids and
    cosines within 1e-4);
  - compare.html: the two jobs, and per clip each job's 4 latents with the
    largest total activation, in order;
  - `stsae browse` again replaces the browser whole: a page left from before
    is gone, and no browser.partial or browser.old stays;
  - bad input: a run without results.h5, a results.h5 whose top_clips name a
    clip that does not exist, a missing model.h5: exit 1, a message naming
    the file (and the dataset).
chromium: headless Chromium (Debian's chromium-headless-shell or chromium)
  loads each kind of page from file:// with no console message (an error in
  browse.js would print one), and its screenshot is not blank; the job page
  opened as JOB/index.html#sort=freq:desc&filter=WORD has run browse.js:
  the table sorted by frequency, the rows shown those holding WORD. Exit 77
  (skipped), saying what to install, where Chromium is absent.
Planted (ctest): browse_heat_transposed (the heat map's rows and columns
swapped) fails `data`; browse_js_error (browse.js calls a function that
does not exist) fails `chromium`.
"""
import argparse
import glob
import html.parser
import os
import re
import shutil
import subprocess
import sys
import urllib.parse

import h5py
import numpy as np
from PIL import Image

DECK = """run_dir: {w}/run
synth: {{out: data, clips: 70, frames: 16, size: 64, seed: 1}}
extract:
  input: {{csv: data/clips.csv}}
  backbone: motion
  image_size: 64
  patch: 16
  frames: 16
  layers: [0]
  out: features.h5
train:
  features: features.h5
  layer: 0
  expansion: 2
  k: 16
  k_aux: 64
  epochs: 3
  batch_tokens: 512
  batch_clips: 4
  streams: 2
  seeds: [0]
  progress_every: 0
  grid:
    - {{variant: standard}}
    - {{variant: temporal+M, lambda: 0.1}}
eval:
  ablate_n: [10]
  random_draws: 1
report:
  browse_latents: {pages}
"""
PAGES = 5
JOBS = ("standard_seed0", "temporal+M_lambda0.1_seed0")
BOUNDARY = 1e-4


class Links(html.parser.HTMLParser):
    """The href and src of a page, and its tables' rows."""

    def __init__(self):
        super().__init__()
        self.links, self.rows, self.cur, self.cell, self.svgs = [], [], None, None, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for k in ("href", "src"):
            if k in a:
                self.links.append(a[k])
        if tag == "tr":
            self.cur = []
        elif tag == "td" and self.cur is not None:
            self.cell = {"v": a.get("data-v"), "text": ""}
        elif tag == "svg" and "data-at" in a:
            self.svgs.append(([float(v) for v in a["data-at"].split()], [float(v) for v in a["data-max"].split()]))

    def handle_endtag(self, tag):
        if tag == "td" and self.cell is not None:
            self.cur.append(self.cell)
            self.cell = None
        elif tag == "tr" and self.cur is not None:
            if self.cur:
                self.rows.append(self.cur)
            self.cur = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell["text"] += data


def parse(path):
    p = Links()
    p.feed(open(path, encoding="utf-8").read())
    return p


def encode(x, P, plus_m, k, theta):
    """Codes of x [n, d] and the tokens whose selection is within BOUNDARY of
    its boundary (float32 and float64 may disagree there)."""
    a = np.maximum((x - P["b_dec"]) @ P["W_enc"].T + P["b_enc"], 0)
    if plus_m:
        z = np.where(a > theta, a, 0)
        near = (np.abs(a - theta) < BOUNDARY * max(1.0, theta))
        return z, near
    idx = np.argsort(-a, axis=1)
    rows = np.arange(a.shape[0])[:, None]
    z = np.zeros_like(a)
    z[rows, idx[:, :k]] = a[rows, idx[:, :k]]
    srt = -np.sort(-a, axis=1)
    gap = srt[:, k - 1] - srt[:, k]
    near = np.zeros_like(a, dtype=bool)
    near[gap < BOUNDARY * np.maximum(1.0, srt[:, k - 1])] = True
    return z, near


def make_run(a, w, env):
    shutil.rmtree(w, ignore_errors=True)
    os.makedirs(w)
    open(f"{w}/deck.yaml", "w").write(DECK.format(w=w, pages=PAGES))
    p = subprocess.run([a.stsae, "run", f"{w}/deck.yaml"], env=env, capture_output=True, text=True)
    if p.returncode != 0:
        print(p.stdout[-3000:], p.stderr[-3000:])
        raise SystemExit(f"FAIL: stsae run exited {p.returncode}")
    m = re.search(r"browse: (\d+) strips, ([\d.]+) MB", p.stdout)
    if not m:
        print(p.stdout[-3000:])
        raise SystemExit("FAIL: stsae report wrote no browser (no 'browse: N strips' line)")
    return int(m.group(1)), float(m.group(2))


def case_data(a, w, env, report):
    run, br = f"{w}/run", f"{w}/run/browser"
    n_strips, mb = make_run(a, w, env)
    report(f"report wrote the browser: {n_strips} heat maps, {mb} MB (bound: 2 MB for this run)", mb < 2.0)
    with h5py.File(f"{run}/features.h5") as f:
        X = f["features/layer_00"][...].astype(np.float64)
        split, done, labels = f["split"][...], f["done"][...], f["labels"][...]
        names = [s.decode() if isinstance(s, bytes) else s for s in f["label_names"][...]]
        T, H, W = int(f.attrs["T"]), int(f.attrs["H"]), int(f.attrs["W"])
    test = np.flatnonzero((split == 1) & (done == 1))
    N = H * W
    with h5py.File(f"{run}/results.h5") as f:
        per = {j: {k: f[f"per_latent/{j}/{k}"][...] for k in f[f"per_latent/{j}"]} for j in JOBS}

    # every page, every link
    pages = sorted(glob.glob(f"{br}/**/*.html", recursive=True))
    bad = []
    for pg in pages:
        for link in parse(pg).links:
            if re.match(r"^[a-z]+:", link):
                bad.append(f"{os.path.relpath(pg, br)}: {link} (not a file of the run)")
                continue
            target = urllib.parse.unquote(link.split("#")[0])
            if target and not os.path.exists(os.path.join(os.path.dirname(pg), target)):
                bad.append(f"{os.path.relpath(pg, br)}: {link}")
    report(f"{len(pages)} pages: every link and picture resolves, nothing from a network", not bad, "; ".join(bad[:5]))
    report("run page, compare page, assets", all(os.path.exists(f"{br}/{p}") for p in
                                                  ("index.html", "compare.html", "style.css", "browse.js")))

    codes = {}
    for job in JOBS:
        with h5py.File(f"{run}/jobs/{job}/model.h5") as f:
            P = {k: f["params/" + k][...].astype(np.float64) for k in ("W_enc", "b_enc", "W_dec", "b_dec")}
            s, theta, k = float(f.attrs["scale"]), float(f.attrs["theta"]), int(f.attrs["k"])
        Z, NEAR = zip(*(encode(s * X[c].reshape(-1, X.shape[-1]), P, job.startswith("temporal+M"), k, theta)
                        for c in test))
        Z, NEAR = np.stack(Z), np.stack(NEAR)  # [clips, T*N, m]
        codes[job] = (Z, NEAR)
        m = Z.shape[-1]
        fired = (Z > 0).reshape(-1, m)
        freq = fired.mean(0)
        mean_act = np.where(fired.sum(0) > 0, Z.reshape(-1, m).sum(0) / np.maximum(fired.sum(0), 1), 0)
        live = np.flatnonzero(freq > 0)
        mcv, top = per[job]["mean_clip_value"], per[job]["top_clips"].astype(int)
        want_pages = sorted(live[np.argsort(-mcv[live], kind="stable")][:PAGES].tolist())
        got_pages = sorted(int(re.search(r"latent_(\d+)", p).group(1)) for p in glob.glob(f"{br}/{job}/latent_*.html"))
        report(f"{job}: pages for the {PAGES} live latents with the largest mean clip value", got_pages == want_pages,
               f"{got_pages} vs {want_pages}")

        # the job table
        rows = parse(f"{br}/{job}/index.html").rows
        ids = [int(r[0]["v"]) for r in rows]
        report(f"{job}: one row per live latent ({len(live)} of {m})", sorted(ids) == live.tolist(),
               f"{len(ids)} rows")
        errs = []
        for r in rows:
            j = int(r[0]["v"])
            v = [float(c["v"]) if c["v"] is not None else None for c in r]
            lab = [labels[test[c]] for c in top[j] if c >= 0]
            counts = np.bincount(lab, minlength=len(names))
            if abs(v[2] - freq[j]) > 2.0 / fired.shape[0] + 1e-6:
                errs.append(f"latent {j} frequency {v[2]} vs {freq[j]}")
            if abs(v[3] - mean_act[j]) > 1e-3 * max(1.0, mean_act[j]):
                errs.append(f"latent {j} mean activation {v[3]} vs {mean_act[j]}")
            for col, key in ((4, "rho"), (5, "ms"), (8, "mean_clip_value")):
                ref = float(per[job][key][j])
                if not (np.isnan(ref) and np.isnan(v[col])) and abs(v[col] - ref) > 1e-5 * max(1.0, abs(ref)):
                    errs.append(f"latent {j} {key} {v[col]} vs {ref}")
            if abs(v[6] - counts.max() / len(lab)) > 1e-9 or r[7]["text"] != names[int(np.argmax(counts))]:
                errs.append(f"latent {j} purity {v[6]} {r[7]['text']!r} vs {counts.max() / len(lab)} "
                            f"{names[int(np.argmax(counts))]!r}")
            if job.startswith("temporal+M") and (r[1]["text"] == "high") != (j < round(0.2 * m)):
                errs.append(f"latent {j} group {r[1]['text']}")
        report(f"{job}: frequency, mean activation, lag-1, MS, purity, label, group of every row", not errs,
               "; ".join(errs[:5]))

        # the latent pages
        errs, checked, left = [], 0, 0
        D = P["W_dec"].T / np.linalg.norm(P["W_dec"].T, axis=1, keepdims=True)
        for j in want_pages:
            page = f"{br}/{job}/latent_{j:05d}.html"
            text = open(page, encoding="utf-8").read()
            shown = [int(c) for c in re.findall(r"test clip (\d+):", text)]
            want = [int(c) for c in top[j] if c >= 0]
            if shown != want:
                errs.append(f"latent {j}: clips {shown} vs {want}")
                continue
            acts = [Z[c][:, j].reshape(T, N) for c in want]
            vmax = max(x.max() for x in acts)
            svgs = parse(page).svgs
            for c, act, (at, mx) in zip(want, acts, svgs):
                unsure = NEAR[c][:, j].reshape(T, N)
                left += int(unsure.sum())
                peak = int(np.argmax(act.sum(0)))
                if not unsure.any():
                    if np.abs(np.array(at) - act[:, peak]).max() > 1e-4 * max(1.0, vmax):
                        errs.append(f"latent {j} clip {c}: timeline {at} vs {act[:, peak].round(5).tolist()}")
                    if np.abs(np.array(mx) - act.max(1)).max() > 1e-4 * max(1.0, vmax):
                        errs.append(f"latent {j} clip {c}: largest {mx} vs {act.max(1).round(5).tolist()}")
                img = np.asarray(Image.open(f"{br}/{job}/img/c{c:05d}_l{j:05d}.png").convert("RGBA")).astype(int)
                if img.shape != (H, T * W, 4):
                    errs.append(f"latent {j} clip {c}: heat map {img.shape}, want {(H, T * W, 4)}")
                    continue
                u = np.clip(act / vmax, 0, 1)  # [T, N] -> the picture's [H, T*W]
                u = u.reshape(T, H, W).transpose(1, 0, 2).reshape(H, T * W)
                ok = ~unsure.reshape(T, H, W).transpose(1, 0, 2).reshape(H, T * W)
                alpha = np.where(u > 0, np.round(255 * (0.25 + 0.6 * u)), 0)
                green = np.where(u > 0, np.round(230 * u), 0)
                diff = np.maximum(np.abs(img[..., 3] - alpha), np.abs(img[..., 1] - green) * (u > 0))
                if (diff[ok] > 2).any():
                    errs.append(f"latent {j} clip {c}: heat map off by up to {diff[ok].max()} levels at "
                                f"{int((diff[ok] > 2).sum())} of {int(ok.sum())} patches")
                checked += 1
                fr = Image.open(f"{br}/frames/c{c:05d}.jpg")
                if fr.size[0] % T or fr.size[0] // T != fr.size[1] or fr.size[1] % H:
                    errs.append(f"frames of clip {c}: {fr.size}, not {T} square frames of whole patches")
            # nearest latents by decoder cosine
            cos = D @ D[j]
            cos[j] = -np.inf
            near = np.argsort(-cos, kind="stable")[:8]
            got = [r for r in parse(page).rows if len(r) == 3]
            got_ids = [int(re.sub(r"\D", "", r[0]["text"])) for r in got]
            got_cos = [float(r[1]["text"]) for r in got]
            if got_ids != near.tolist() or np.abs(np.array(got_cos) - cos[near]).max() > 1e-3:
                errs.append(f"latent {j}: nearest {got_ids} {got_cos} vs {near.tolist()} {cos[near].round(3).tolist()}")
        report(f"{job}: latent pages: clips, timelines, heat maps ({checked} clips; {left} boundary tokens left "
               "out), frames, nearest latents", not errs and checked >= PAGES * 4, "; ".join(errs[:4]))

    # compare.html: per clip, each job's 4 latents with the largest total
    text = open(f"{br}/compare.html", encoding="utf-8").read()
    errs = []
    sections = re.split(r"<h2>test clip (\d+):", text)[1:]
    for c, body in zip(sections[0::2], sections[1::2]):
        c = int(c)
        for job in JOBS:
            Z, _ = codes[job]
            tot = Z[c].sum(0)
            want = np.argsort(-tot, kind="stable")[:4].tolist()
            part = body.split(f">{job}</a>")[1] if f">{job}</a>" in body else ""
            got = [int(v) for v in re.findall(r'<div class="cmp">latent (?:<a [^>]*>)?(\d+)', part)][:4]
            if got != want:
                errs.append(f"clip {c} {job}: latents {got} vs {want}")
    report(f"compare.html: {len(sections) // 2} clips, each job's 4 strongest latents", len(sections) == 6 and not errs,
           "; ".join(errs[:4]))

    # a second browse replaces the browser whole: nothing of the first stays, no partial tree is left
    open(f"{br}/stale.html", "w").write("<p>from an older browse</p>")
    p = subprocess.run([a.stsae, "browse", run], env=env, capture_output=True, text=True)
    left = [d for d in ("browser.partial", "browser.old") if os.path.exists(f"{run}/{d}")]
    report("browse again: the browser replaced whole (no stale page, no partial tree)",
           p.returncode == 0 and not os.path.exists(f"{br}/stale.html") and os.path.exists(f"{br}/index.html")
           and not left, f"exit {p.returncode}, left {left}: {p.stderr.strip()[-300:]}")

    # bad input: one message naming the file, exit 1
    def bad_run(name, prepare, expect):
        bad = f"{w}/bad_{name}"
        shutil.rmtree(bad, ignore_errors=True)
        shutil.copytree(run, bad, ignore=shutil.ignore_patterns("browser", "data"))
        prepare(bad)
        p = subprocess.run([a.stsae, "browse", bad], env=env, capture_output=True, text=True)
        report(f"bad input: {name}: exit 1 naming {expect}", p.returncode == 1 and all(e in p.stderr for e in expect),
               f"exit {p.returncode}: {p.stderr.strip()[-400:]}")

    bad_run("no results.h5", lambda d: os.remove(f"{d}/results.h5"), ["results.h5"])

    def wrong_top(d):
        with h5py.File(f"{d}/results.h5", "a") as f:
            t = f[f"per_latent/{JOBS[0]}/top_clips"]
            v = t[...]
            v[3, 2] = 10 ** 6
            t[...] = v

    bad_run("top_clips beyond the test clips", wrong_top, ["results.h5", "top_clips"])
    bad_run("no model.h5", lambda d: os.remove(f"{d}/jobs/{JOBS[1]}/model.h5"), ["model.h5"])


def chromium_binary():
    for name in ("chromium-headless-shell", "chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def case_chromium(a, w, env, report):
    chrome = chromium_binary()
    if not chrome:
        print("skipped: no Chromium (Debian: apt install chromium-headless-shell)")
        raise SystemExit(77)
    make_run(a, w, env)
    br = f"{w}/run/browser"
    job = JOBS[0]
    latent = sorted(glob.glob(f"{br}/{job}/latent_*.html"))[0]
    base = [chrome, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
            f"--user-data-dir={w}/chrome-profile", "--window-size=1280,1000"]
    for name, page in (("run page", f"{br}/index.html"), ("compare page", f"{br}/compare.html"),
                       ("job page", f"{br}/{job}/index.html"), ("latent page", latent)):
        shot = f"{w}/{name.replace(' ', '_')}.png"
        p = subprocess.run(base + [f"--screenshot={shot}", "file://" + page], capture_output=True, text=True,
                           timeout=120)
        console = [line for line in p.stderr.splitlines() if "CONSOLE" in line]
        ok = p.returncode == 0 and os.path.exists(shot) and not console
        info = f"exit {p.returncode}; " + " | ".join(console[:3])
        if ok:
            g = np.asarray(Image.open(shot).convert("L")).astype(float)
            inked = float((np.abs(g - np.median(g)) > 30).mean())
            ok = g.std() > 5 and inked > 0.005  # a blank page: 0
            info = f"screenshot std {g.std():.1f}, {100 * inked:.1f}% inked"
        report(f"chromium: {name} loads from file:// with no console message, screenshot not blank", ok, info)
    # browse.js ran: sorted and filtered from the address
    word = parse(f"{br}/{job}/index.html").rows[0][7]["text"].split()[-1].lower()  # a word of a dominant label
    p = subprocess.run(base + ["--dump-dom", f"file://{br}/{job}/index.html#sort=freq:desc&filter={word}"],
                       capture_output=True, text=True, timeout=120)
    tag = re.search(r'<table class="sortable" id="latents"([^>]*)>', p.stdout)
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', tag.group(1))) if tag else {}
    body = p.stdout[p.stdout.find("<tbody>"):p.stdout.find("</tbody>")]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, flags=re.S)
    freq = [float(re.findall(r'data-v="([^"]*)"', r)[1]) for r in rows]  # latent, frequency, ...
    holding = sum(word in re.sub(r"<[^>]+>", "", r).lower() for r in rows)
    report("chromium: #sort=freq:desc sorts the job table by frequency",
           attrs.get("data-sorted") == "freq:desc" and freq == sorted(freq, reverse=True) and len(freq) > 10,
           f"data-sorted={attrs.get('data-sorted')}, {len(freq)} rows")
    report(f"chromium: #filter={word} shows the {holding} rows holding it", attrs.get("data-shown") == str(holding)
           and holding > 0, f"data-shown={attrs.get('data-shown')}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stsae", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--case", choices=("data", "chromium"), required=True)
    a = ap.parse_args()
    w = os.path.abspath(a.workdir)
    env = dict(os.environ, OMP_NUM_THREADS="2")
    fails = 0

    def report(name, ok, info=""):
        nonlocal fails
        print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + info if info and not ok else ''}", flush=True)
        fails += not ok

    (case_data if a.case == "data" else case_chromium)(a, w, env, report)
    print(f"{fails} failed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
