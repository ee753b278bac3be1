"""stsae.py — read an stsae run from Python (numpy + h5py only).

In:  a run directory as `stsae train / eval / report` leave it (README):
       RUN_DIR/train.yaml             the deck as run
       RUN_DIR/jobs/NAME/model.h5     one trained SAE (src/io/model.c owns the format)
       RUN_DIR/jobs/NAME/eval.h5      its metrics (root attributes) and per-latent arrays
       RUN_DIR/raw/eval.h5            the raw features' row (train.layer; a layer
                                      analysis adds RUN_DIR/raw_layerL/eval.h5)
       RUN_DIR/results.csv, results.h5  the table of every row (and per_latent/NAME/...)
     and a feature file (SPEC §3: /features/layer_LL [clips, T, N, d] float16).
Out: numpy arrays, computed as stsae computes them, so that a user's analysis
     sees the codes and reconstructions that stsae trained and evaluated:

       Model.encode(x)  x raw features [..., d] (any float dtype) -> codes [..., m]
                        float32: s*x (s: the model's input scale, mean ||s x||^2 = d),
                        pre = (s x - b_dec) W_enc^T + b_enc, a = relu(pre); TopK keeps
                        the k largest positive a_j per token; BatchTopK (+M variants)
                        keeps a_j > theta (the fixed evaluation threshold that
                        `stsae eval` uses, SPEC §1), never the batch selection of
                        training; sparsemax / entmax15: z = sparsemax(pre / T_s) or
                        entmax-1.5 (the exact sort-based forms of src/sae/select.c).
       Model.decode(z)  codes -> reconstruction in the units of x: (W_dec z + b_dec) / s
                        (reported reconstructions are divided by s, SPEC §1); with
                        n_latents only latents j < n_latents count (+M's high-level group).

Everything is float32 with float32 accumulation, as in stsae (the encoder GEMM
is sgemm there and numpy's float32 matmul here): codes agree to ~1e-6
relative; a token whose k-th and (k+1)-th activations tie within rounding may
keep the other latent, as it may between two BLAS builds.

model.h5 stores W_enc [m, d], b_enc [m], W_dec [d, m] (SPEC's orientation: a
column per latent, unit norm in the scaled space) and b_dec [d], all in the
scaled space; the root attributes hold the configuration (variant, d, m, k,
m_high, ..., scale, theta). `Model.attrs` has every one of them.

Example:
    import stsae
    run = stsae.Run("runs/demo")
    m = run.model(run.jobs()[0])
    x = stsae.read_clip("runs/demo/features.h5", layer=m.layer, clip=0)  # [T, N, d]
    z = m.encode(x); xhat = m.decode(z)
"""
import csv
import os

import h5py
import numpy as np

__all__ = ["Run", "Model", "Eval", "read_clip", "read_results_csv", "read_results_h5"]

# The format versions this reader understands (model.h, eval.h, report's results.h5).
MODEL_FORMAT_VERSION = 1
EVAL_FORMAT_VERSION = 1


def _version_ok(path, f, want):
    v = int(f.attrs.get("format_version", 1))
    if v != want:
        raise ValueError(f"{path}: format_version {v}, this reader reads {want}")


def _str(v):
    return v.decode() if isinstance(v, bytes) else str(v)


class Model:
    """One trained SAE (model.h5). Attributes: path, attrs (every root attribute),
    variant, d, m, k, m_high, scale, theta, T_s, layer, name, and the parameters
    W_enc [m, d], b_enc [m], W_dec [d, m], b_dec [d] (float32, scaled space)."""

    def __init__(self, path):
        self.path = path
        with h5py.File(path, "r") as f:
            _version_ok(path, f, MODEL_FORMAT_VERSION)
            self.attrs = {k: (_str(v) if isinstance(v, (bytes, str)) else v.item() if hasattr(v, "item") else v)
                          for k, v in f.attrs.items()}
            p = {k: f["params/" + k][...].astype(np.float32) for k in ("W_enc", "b_enc", "W_dec", "b_dec")}
        a = self.attrs
        self.variant = a["variant"]
        self.d, self.m, self.k = int(a["d"]), int(a["m"]), int(a["k"])
        self.m_high = int(a.get("m_high", 0))
        self.scale = np.float32(a["scale"])
        self.theta = np.float32(a["theta"])
        self.T_s = np.float32(a.get("T_s", 1.0))
        self.layer = int(a.get("layer", 0))
        self.name = a.get("job", os.path.basename(os.path.dirname(path)))
        self.W_enc, self.b_enc, self.W_dec, self.b_dec = p["W_enc"], p["b_enc"], p["W_dec"], p["b_dec"]
        if self.W_enc.shape != (self.m, self.d) or self.W_dec.shape != (self.d, self.m) \
                or self.b_enc.shape != (self.m,) or self.b_dec.shape != (self.d,):
            raise ValueError(f"{path}: tensor shapes do not match d = {self.d}, m = {self.m}")

    @property
    def selection(self):
        """'topk', 'batchtopk' (the +M variants), 'sparsemax' or 'entmax15' (src/sae/variants.c)."""
        if self.variant.endswith("+M"):
            return "batchtopk"
        if self.variant in ("sparsemax", "entmax15"):
            return self.variant
        return "topk"

    def pre_activations(self, x):
        """pre = (s x - b_dec) W_enc^T + b_enc, float32 [..., m]; x in the feature file's units."""
        x = np.asarray(x)
        if x.shape[-1] != self.d:
            raise ValueError(f"tokens have {x.shape[-1]} channels, the model d = {self.d}")
        xs = x.astype(np.float32).reshape(-1, self.d) * self.scale
        pre = (xs - self.b_dec) @ self.W_enc.T + self.b_enc
        return pre.reshape(x.shape[:-1] + (self.m,))

    def encode(self, x):
        """Dense codes z [..., m] (float32) of raw tokens x [..., d], as `stsae eval` encodes."""
        pre = self.pre_activations(x)
        flat = pre.reshape(-1, self.m)
        sel = self.selection
        if sel == "batchtopk":
            z = np.where((flat > 0) & (flat > self.theta), flat, np.float32(0))
        elif sel == "topk":
            k = min(self.k, self.m)
            idx = np.argpartition(-flat, k - 1, axis=1)[:, :k]
            rows = np.arange(flat.shape[0])[:, None]
            z = np.zeros_like(flat)
            kept = flat[rows, idx]
            z[rows, idx] = np.where(kept > 0, kept, np.float32(0))
        elif sel == "sparsemax":
            z = _sparsemax(flat / self.T_s)
        else:
            z = _entmax15(flat / self.T_s)
        return z.astype(np.float32).reshape(pre.shape)

    def decode(self, z, n_latents=None):
        """Reconstruction in the units of x: (W_dec z + b_dec) / s, float32 [..., d].
        n_latents < m: only latents j < n_latents (the +M high-level group: m_high)."""
        z = np.asarray(z, dtype=np.float32)
        flat = z.reshape(-1, self.m)
        if n_latents is not None and n_latents < self.m:
            flat = flat.copy()
            flat[:, n_latents:] = 0
        xh = (flat @ self.W_dec.T + self.b_dec) * (np.float32(1) / self.scale)
        return xh.reshape(z.shape[:-1] + (self.d,))

    def __repr__(self):
        return f"Model({self.name!r}, variant={self.variant}, d={self.d}, m={self.m}, k={self.k}, scale={self.scale:g})"


def _sparsemax(u):
    """Row-wise sparsemax (Martins & Astudillo 2016), exact, sort-based."""
    srt = -np.sort(-u, axis=1)
    cs = np.cumsum(srt, axis=1, dtype=np.float64)
    j = np.arange(1, u.shape[1] + 1)
    support = 1 + j * srt > cs
    kz = support.sum(axis=1)
    tau = (cs[np.arange(u.shape[0]), kz - 1] - 1) / kz
    return np.maximum(u - tau[:, None].astype(np.float32), 0)


def _entmax15(u):
    """Row-wise entmax-1.5 (Peters et al. 2019), exact, sort-based: z = relu(u/2 - tau)^2."""
    v = (u / 2).astype(np.float64)
    srt = -np.sort(-v, axis=1)
    n = u.shape[1]
    j = np.arange(1, n + 1)
    mean = np.cumsum(srt, axis=1) / j
    mean_sq = np.cumsum(srt ** 2, axis=1) / j
    ss = j * (mean_sq - mean ** 2)
    delta = np.maximum((1 - ss) / j, 0)
    tau_all = mean - np.sqrt(delta)
    support = (tau_all <= srt).sum(axis=1)
    tau = tau_all[np.arange(u.shape[0]), support - 1]
    return (np.maximum(v - tau[:, None], 0) ** 2).astype(np.float32)


class Eval:
    """One eval.h5: attrs (the metrics, named like results.csv's columns) and the
    per-latent arrays (rho, ms, top_clips [m, 8], mean_clip_value,
    probe_weight_norm, timeline [T, 8], timeline_latents, seconds) by name."""

    def __init__(self, path):
        self.path = path
        with h5py.File(path, "r") as f:
            _version_ok(path, f, EVAL_FORMAT_VERSION)
            self.attrs = {k: (_str(v) if isinstance(v, (bytes, str)) else v.item() if hasattr(v, "item") else v)
                          for k, v in f.attrs.items()}
            self.arrays = {k: f[k][...] for k in f if isinstance(f[k], h5py.Dataset)}

    def __getitem__(self, name):
        return self.arrays[name]

    def __contains__(self, name):
        return name in self.arrays

    def keys(self):
        return self.arrays.keys()


class Run:
    """A run directory: jobs(), model(name), eval(name) ('raw' for the raw features,
    'raw_layerL' for those of another layer in a layer analysis),
    results() (results.csv) and results_h5() (results.h5)."""

    def __init__(self, path):
        if not os.path.isdir(path):
            raise FileNotFoundError(f"{path}: not a run directory")
        self.path = path

    def jobs(self, trained_only=True):
        """Job names (directories under jobs/), sorted; trained_only: those with model.h5."""
        d = os.path.join(self.path, "jobs")
        if not os.path.isdir(d):
            return []
        return sorted(n for n in os.listdir(d)
                      if os.path.isdir(os.path.join(d, n))
                      and (not trained_only or os.path.exists(os.path.join(d, n, "model.h5"))))

    def job_dir(self, name):
        raw = name == "raw" or name.startswith("raw_layer")
        return os.path.join(self.path, name) if raw else os.path.join(self.path, "jobs", name)

    def model(self, name):
        return Model(os.path.join(self.job_dir(name), "model.h5"))

    def eval(self, name):
        return Eval(os.path.join(self.job_dir(name), "eval.h5"))

    def results(self):
        return read_results_csv(os.path.join(self.path, "results.csv"))

    def results_h5(self):
        return read_results_h5(os.path.join(self.path, "results.h5"))

    def __repr__(self):
        return f"Run({self.path!r}, {len(self.jobs())} jobs)"


def read_results_csv(path):
    """results.csv as a list of dicts, one per row (the raw row first); numbers as
    float, empty cells (the column does not apply) as nan, job and variant as str."""
    out = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            r = {}
            for k, v in row.items():
                if k in ("job", "variant"):
                    r[k] = v
                else:
                    try:
                        r[k] = float(v) if v != "" else float("nan")
                    except ValueError:
                        r[k] = v
            out.append(r)
    return out


def read_results_h5(path):
    """results.h5: {'columns': [str], 'rows': [job], 'variants': [str], 'table':
    float64 [rows, columns], 'per_latent': {job: {array: ndarray}}}."""
    with h5py.File(path, "r") as f:
        res = {
            "columns": [_str(s) for s in f["columns"][...]],
            "rows": [_str(s) for s in f["rows"][...]],
            "variants": [_str(s) for s in f["variants"][...]],
            "table": f["table"][...],
            "per_latent": {},
        }
        if "per_latent" in f:
            for job in f["per_latent"]:
                res["per_latent"][job] = {k: f["per_latent"][job][k][...] for k in f["per_latent"][job]}
    return res


def read_clip(feature_path, layer, clip):
    """One clip's features [T, N, d] as float32 (the feature file stores float16)."""
    with h5py.File(feature_path, "r") as f:
        return f[f"features/layer_{layer:02d}"][clip].astype(np.float32)


def feature_split(feature_path):
    """(labels, split) per clip of a feature file (split 0 train, 1 test)."""
    with h5py.File(feature_path, "r") as f:
        return f["labels"][...], f["split"][...]
