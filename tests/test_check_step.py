#!/usr/bin/python3
"""Reference tests for `stsae check-step` (SPEC section 5 plus the agreed
extensions). For every variant it draws several small random, tie-free cases,
writes CASE.h5, runs `STSAE check-step CASE.h5 OUT.h5` and compares OUT.h5
with the float64 PyTorch reference in tests/ref/sae_ref.py.

  /usr/bin/python3 tests/test_check_step.py --stsae build/stsae
        [--variants standard,temporal] [--cases 8] [--seed 0] [--workdir DIR]
  /usr/bin/python3 tests/test_check_step.py --stsae build/stsae --device cuda
        # the CUDA step (`check-step --device cuda`): the variants it covers
        (CUDA_VARIANTS: all of them); exit 77 when the binary says "no CUDA
        device" (exit 77)
  /usr/bin/python3 tests/test_check_step.py --emit DIR     # cases + REF.h5, no binary
  /usr/bin/python3 tests/test_check_step.py --f32-ref      # float32 reference as the
        "binary": checks that the tolerances and tie margins suit float32 code
  /usr/bin/python3 tests/test_check_step.py --self-test    # gradcheck, loop-based
        losses, sort-based sparsemax/entmax, Adam vs torch.optim.Adam

One line per case, then `N passed, M failed`; exit status 1 on any failure.
Tolerances: losses |out-ref| <= 1e-4*max(|ref|,1e-3) (exact 0 where the
reference term is 0); tensors max|out-ref| <= 1e-4*max|ref| (+1e-7 if the
reference is all zero; a frozen decoder's gradients must be exactly 0).
"""

import argparse
import math
import os
import subprocess
import sys

import numpy as np
import torch
import h5py

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "ref"))
import sae_ref as R  # noqa: E402

REL_TOL = 1e-4
LOSS_FLOOR = 1e-3
ZERO_ABS = 1e-7

# Selection-boundary margins, relative to max(a) of the batch: a case whose
# kept set (TopK, AuxK, BatchTopK threshold, sparsemax/entmax support, or
# which kept values are positive) would change if some pre-activation moved
# by less than this is redrawn. float32 rounding in the C code moves
# pre-activations by ~1e-7..1e-6 relative, so 1e-4 leaves a factor >= 100
# while most draws pass (1e-3 rejects most clip batches: their gaps are small).
# The entmax15 support boundary is smooth (C1), see sae_ref.selection_margins.
TOKEN_MARGIN = 1e-4
BATCH_MARGIN = 1e-4
SMOOTH_MARGIN = 1e-6
# Optimizer cases: the float32 error of every Adam update is estimated by
# running the reference in float32 at the same parameters; times SAFETY it
# must stay under OPTIM_BUDGET of the tolerance on the final parameters.
SAFETY = 10.0
OPTIM_BUDGET = 0.5
MAX_TRIES = 400

CLIP_VARIANTS = ("temporal", "separate", "temporal+M", "separate+M")
# the variants `check-step --device cuda` covers (the `cuda` column of src/sae/variants.c)
CUDA_VARIANTS = ("standard", "temporal", "separate", "raster", "standard+M", "temporal+M", "separate+M",
                 "sparsemax", "entmax15", "frozen")


class NoDevice(Exception):
    """`check-step --device cuda` exited 77: no CUDA device (or no CUDA build)."""


# ---------------------------------------------------------------------------
# Random cases
# ---------------------------------------------------------------------------

def schedule(variant, index):
    """Deterministic coverage per case index: dead-latent regime, k_aux,
    alpha, optimizer on/off, batch layout for sparsemax/entmax15."""
    return {
        # n_dead < k_aux; k_aux <= n_dead <= 4 k_aux (the step's dense AuxK
        # form); n_dead > 4 k_aux (its sparse form: sae.c AUX_DENSE_RATIO); 0
        "dead_mode": ("few", "many", "none", "few", "most", "none")[index % 6],
        "k_aux": (4, 16)[index % 2],
        "alpha": (0.5, 1.0 / 32)[((index + 1) // 2) % 2],  # both with and without optim
        "optim": (index // 2) % 2 == 1,                     # indices 2,3, 6,7, ...
        "smax_layout": ("tokens", "clips", "clips_no_temp")[index % 3],
    }


def draw_case(variant, index, rng):
    """One random case (not yet checked for ties): cfg, float32 numpy params,
    x, uint8 dead."""
    sch = schedule(variant, index)
    small = sch["optim"]          # optimizer cases are smaller: fewer boundaries to cross
    d = int(rng.integers(12, 33))
    m = int(rng.integers(48, 81 if small else 129))
    k = int(rng.choice([3, 5, 8]))
    cfg = {
        "variant": variant, "k": k, "k_aux": sch["k_aux"], "alpha": sch["alpha"],
        "beta": 1.0, "high_frac": float(rng.uniform(0.2, 0.5)),
        "lambda_t": float(rng.uniform(0.1, 1.0)), "lambda_s": float(rng.uniform(0.1, 1.0)),
        "lambda_r": float(rng.uniform(0.1, 1.0)), "tau": float(rng.uniform(0.1, 0.5)),
        "T_s": float(rng.uniform(0.5, 2.0)), "T": 1, "H": 1, "W": 1,
        "optim_steps": 0, "lr": 0.0, "warmup_steps": 1,
        "adam_beta1": 0.9, "adam_beta2": 0.999, "adam_eps": 1e-8,
    }
    if sch["optim"]:
        cfg.update(optim_steps=int(rng.integers(3, 6)), lr=float(rng.uniform(0.005, 0.015)),
                   warmup_steps=2)

    # batch layout
    if variant in CLIP_VARIANTS or (variant in ("sparsemax", "entmax15")
                                    and sch["smax_layout"] != "tokens"):
        B, T, H, W = ((2, 3, 2, 3) if small else
                      (int(rng.integers(2, 4)), int(rng.integers(3, 5)), int(rng.integers(2, 4)), 3))
        cfg.update(T=T, H=H, W=W)
        if sch["smax_layout"] == "clips_no_temp" and variant in ("sparsemax", "entmax15"):
            cfg["lambda_t"] = 0.0
        # tokens drift slowly over time so consecutive codes overlap
        x = np.empty((B, T, H * W, d))
        x[:, 0] = rng.standard_normal((B, H * W, d))
        for t in range(1, T):
            x[:, t] = 0.8 * x[:, t - 1] + 0.6 * rng.standard_normal((B, H * W, d))
    elif variant == "raster":
        P = int(rng.integers(6, 11 if small else 17))
        x = np.empty((P, 2, d))
        x[:, 0] = rng.standard_normal((P, d))
        x[:, 1] = 0.8 * x[:, 0] + 0.6 * rng.standard_normal((P, d))
    else:
        x = rng.standard_normal((int(rng.integers(24, 31 if small else 41)), d))

    # parameters: unit decoder columns, independent encoder, small biases
    W_dec = rng.standard_normal((d, m))
    W_dec /= np.linalg.norm(W_dec, axis=0, keepdims=True)
    params = {
        "W_enc": rng.standard_normal((m, d)) / math.sqrt(d),
        "b_enc": 0.1 + 0.05 * rng.standard_normal(m),
        "W_dec": W_dec,
        "b_dec": 0.1 * rng.standard_normal(d),
    }
    params = {p: v.astype(np.float32) for p, v in params.items()}

    dead = np.zeros(m, dtype=np.uint8)
    if sch["dead_mode"] == "few":
        n_dead = int(rng.integers(1, sch["k_aux"]))
    elif sch["dead_mode"] == "many":
        n_dead = int(rng.integers(sch["k_aux"], min(4 * sch["k_aux"], sch["k_aux"] + 20) + 1))
    elif sch["dead_mode"] == "most":
        n_dead = int(rng.integers(4 * sch["k_aux"] + 1, 4 * sch["k_aux"] + 21))
    else:
        n_dead = 0
    dead[rng.choice(m, size=n_dead, replace=False)] = 1
    return cfg, params, x.astype(np.float32), dead


def to_torch(params, x, dead, dtype=torch.float64):
    return ({p: torch.from_numpy(v).to(dtype) for p, v in params.items()},
            torch.from_numpy(x).to(dtype), torch.from_numpy(dead != 0))


def tie_reason(cfg, params, x, dead):
    """None if the case is safe for a float32 vs float64 comparison, else why
    not: a selection boundary within the margin (at the start or before any
    optimizer step), or final parameters that float32 rounding could move
    beyond the tolerance through Adam's normalization of tiny gradients."""
    def margins_ok(p, when):
        mg = R.selection_margins(cfg, p, x, dead)
        if mg["token"] < TOKEN_MARGIN:
            return f"per-token selection tie {mg['token']:.1e} {when}"
        if mg["batch"] < BATCH_MARGIN:
            return f"BatchTopK threshold tie {mg['batch']:.1e} {when}"
        if mg["smooth"] < SMOOTH_MARGIN:
            return f"entmax support tie {mg['smooth']:.1e} {when}"
        return None

    why = margins_ok(params, "at start")
    if why or cfg["optim_steps"] == 0:
        return why

    # Optimizer: re-check ties before every step, and estimate the float32
    # error of each Adam update from the same reference run in float32.
    problems = []
    predicted = {p: 0.0 for p in R.PARAM_NAMES}
    x32 = x.float()

    def hook(t, params, grads, v_hat, lr):
        if problems:
            return
        why = margins_ok(params, f"before step {t}")
        if why:
            problems.append(why)
            return
        _, g32, _ = R.step(cfg, {p: v.float() for p, v in params.items()}, x32, dead)
        g32["W_dec"] = R.project_decoder_grad(g32["W_dec"].double(), params["W_dec"])
        for p, vh in v_hat.items():
            err = (g32[p].double() - grads[p]).abs()
            upd = SAFETY * lr * err / (torch.sqrt(vh) + cfg["adam_eps"])
            predicted[p] += float(upd.max())

    _, final, _ = R.optim(cfg, params, x, dead, on_step=hook)
    if problems:
        return problems[0]
    for p in R.PARAM_NAMES:
        if predicted[p] > OPTIM_BUDGET * REL_TOL * float(final[p].abs().max()):
            return f"optimizer too sensitive to float32 rounding in {p}"
    return None


def tie_free_case(variant, index, seed):
    """Draw until a case is tie-free. Returns cfg, params, x, dead (numpy,
    float32/uint8) and the number of draws."""
    rng = np.random.default_rng([seed, R.VARIANTS.index(variant), index])
    for tries in range(1, MAX_TRIES + 1):
        cfg, params, x, dead = draw_case(variant, index, rng)
        if tie_reason(cfg, *to_torch(params, x, dead)) is None:
            return cfg, params, x, dead, tries
    raise RuntimeError(f"{variant} case {index}: no tie-free draw in {MAX_TRIES} tries")


# ---------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------

def read_h5(path):
    """All datasets of an HDF5 file as {path: numpy value}."""
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]
        f.visititems(visit)
    return out


def compare(out, ref, cfg):
    """Compare OUT.h5 content with the reference. Returns (failures list of
    strings, worst relative error, name of the worst dataset)."""
    failures, worst, worst_name = [], 0.0, "-"
    frozen = R.variant_info(cfg["variant"])["frozen"]
    for name in sorted(set(out) - set(ref)):
        if name.startswith(("loss/", "optim/")):
            failures.append(f"{name}: unexpected dataset")
    for name, rv in ref.items():
        if name not in out:
            failures.append(f"{name}: missing")
            continue
        ov = np.asarray(out[name])
        rv = np.asarray(rv)
        if ov.shape != rv.shape:
            failures.append(f"{name}: shape {ov.shape}, expected {rv.shape}")
            continue
        if ov.dtype != rv.dtype:
            failures.append(f"{name}: dtype {ov.dtype}, expected {rv.dtype}")
            continue
        if not np.all(np.isfinite(ov)):
            failures.append(f"{name}: non-finite values")
            continue
        o, r = ov.astype(np.float64), rv.astype(np.float64)
        err = float(np.max(np.abs(o - r))) if o.size else 0.0
        if name.startswith("loss/") or name == "optim/theta":
            if float(np.max(np.abs(r))) == 0.0:               # absent/zero term: exactly 0
                bound, scale = 0.0, 1.0
            else:
                scale = max(float(np.max(np.abs(r))), LOSS_FLOOR)
                bound = REL_TOL * scale
        elif name == "optim/loss_total":
            scale = max(float(np.max(np.abs(r))), LOSS_FLOOR)
            bound = REL_TOL * scale
        elif frozen and name in ("grad/W_dec", "grad/b_dec"):
            bound, scale = 0.0, 1.0                            # must be exactly zero
        else:
            scale = float(np.max(np.abs(r)))
            bound = REL_TOL * scale + (ZERO_ABS if scale == 0.0 else 0.0)
            scale = scale if scale > 0 else 1.0
        rel = err / scale
        if rel > worst:
            worst, worst_name = rel, name
        if err > bound:
            failures.append(f"{name}: max|out-ref| = {err:.3e} > {bound:.3e} (rel {rel:.2e})")
    return failures, worst, worst_name


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------

def run_binary(stsae, case_path, out_path, timeout, device="cpu"):
    """Run `stsae check-step [--device D] CASE OUT`; returns (exit status, its messages)."""
    dev = ["--device", device] if device != "cpu" else []
    try:
        proc = subprocess.run([stsae, "check-step", *dev, case_path, out_path],
                              capture_output=True, text=True, timeout=timeout)
        return proc.returncode, (proc.stderr or proc.stdout or "").strip()
    except subprocess.TimeoutExpired:
        return "timeout", f"no exit after {timeout:.0f} s"
    except OSError as e:
        return "exec", str(e)


def case_dir_name(variant, index):
    return f"{variant.replace('+', '_')}_{index:02d}"


def describe(cfg, params, x, dead):
    s = (f"x{list(x.shape)} m={params['W_enc'].shape[0]} k={cfg['k']} "
         f"k_aux={cfg['k_aux']} dead={int(dead.sum())}")
    if cfg["optim_steps"]:
        s += f" optim={cfg['optim_steps']}"
    return s


def same_case(a, b):
    """True if two (cfg, params, x, dead) tuples hold identical data."""
    (c1, p1, x1, d1), (c2, p2, x2, d2) = a, b
    as32 = lambda t: t.float().numpy() if isinstance(t, torch.Tensor) else np.asarray(t, np.float32)
    return (all(c2.get(key) == val for key, val in c1.items())
            and all(np.array_equal(as32(p1[p]), as32(p2[p])) for p in R.PARAM_NAMES)
            and np.array_equal(as32(x1), as32(x2))
            and np.array_equal(np.asarray(d1) != 0, np.asarray(d2) != 0))


def run_case(variant, index, args, workdir, stsae):
    """Generate, write and check one case. Returns (ok, report lines)."""
    label = f"{variant:<11s} case {index}"
    try:
        cfg, params, x, dead, tries = tie_free_case(variant, index, args.seed)
    except RuntimeError as e:
        return False, [f"{label}: FAIL (generator) {e}"]
    cdir = os.path.join(workdir, case_dir_name(variant, index))
    os.makedirs(cdir, exist_ok=True)
    case_path = os.path.join(cdir, "CASE.h5")
    R.write_case(case_path, cfg, params, x, dead)
    info = f"[{describe(cfg, params, x, dead)} draws={tries}]"

    # The reference is computed from what was written and read back.
    case = R.load_case(case_path)
    if not same_case((cfg, params, x, dead), (case[0], case[1], case[2], case[3].numpy())):
        return False, [f"{label}: FAIL (CASE.h5 round trip differs)"]
    ref = R.reference_outputs(*case)

    if args.emit:
        ref_path = os.path.join(cdir, "REF.h5")
        R.write_out(ref_path, ref)
        back = read_h5(ref_path)
        if set(back) != set(ref) or not all(np.array_equal(back[n], ref[n]) for n in ref):
            return False, [f"{label}: FAIL (REF.h5 round trip differs)"]
        return True, [f"{label}: ok   emitted {cdir} {info}"]

    out_path = os.path.join(cdir, "OUT.h5")
    if os.path.exists(out_path):
        os.remove(out_path)
    if args.f32_ref:
        R.write_out(out_path, R.reference_outputs(*R.load_case(case_path, torch.float32)))
        rc, err_text = 0, ""
    else:
        rc, err_text = run_binary(stsae, case_path, out_path, args.timeout, args.device)
        if rc == 77:
            raise NoDevice(err_text)
    if rc != 0 or not os.path.exists(out_path):
        tail = " | ".join(err_text.splitlines()[-3:]) or "no OUT.h5"
        return False, [f"{label}: FAIL (binary exit {rc}: {tail}) {info}"]
    try:
        out = read_h5(out_path)
    except Exception as e:  # noqa: BLE001 - any unreadable output is a failure
        return False, [f"{label}: FAIL (cannot read OUT.h5: {e}) {info}"]
    failures, worst, worst_name = compare(out, ref, case[0])
    status = "FAIL" if failures else "ok  "
    lines = [f"{label}: {status} worst rel err {worst:.2e} ({worst_name}) {info}"]
    return not failures, lines + [f"    {msg}" for msg in failures]


# ---------------------------------------------------------------------------
# Self-test of the reference itself (no binary): --self-test
# ---------------------------------------------------------------------------

def naive_losses(cfg, params, x, dead):
    """The loss terms recomputed with explicit Python loops over tokens,
    anchors and candidates (selection by sorting Python lists), as an
    independent check of the vectorized reference. TopK/BatchTopK only."""
    info = R.variant_info(cfg["variant"])
    W_enc, b_enc, W_dec, b_dec = (params[p] for p in R.PARAM_NAMES)
    d, m = W_dec.shape
    X = x.reshape(-1, d)
    n = X.shape[0]
    pre = ((X - b_dec) @ W_enc.T + b_enc).tolist()
    a = [[max(v, 0.0) for v in row] for row in pre]
    z = torch.zeros(n, m, dtype=torch.float64)
    if info["selection"] == "topk":
        for i in range(n):
            for j in sorted(range(m), key=lambda j: -a[i][j])[:cfg["k"]]:
                z[i, j] = a[i][j]
    else:
        allv = sorted((a[i][j] for i in range(n) for j in range(m)), reverse=True)
        v = allv[cfg["k"] * n - 1]
        for i in range(n):
            for j in range(m):
                if a[i][j] >= v and a[i][j] > 0:
                    z[i, j] = a[i][j]
    xhat = z @ W_dec.T + b_dec

    def fvu(u, w):
        mu = u.mean(0)
        return sum(float(((u[i] - w[i]) ** 2).sum()) for i in range(u.shape[0])) / \
            sum(float(((u[i] - mu) ** 2).sum()) for i in range(u.shape[0]))
    L = {"rec": fvu(X, xhat), "aux": 0.0}
    dead_idx = [j for j in range(m) if dead[j]]
    if dead_idx:
        k_eff = min(cfg["k_aux"], len(dead_idx))
        zaux = torch.zeros(n, m, dtype=torch.float64)
        for i in range(n):
            for j in sorted(dead_idx, key=lambda j: -a[i][j])[:k_eff]:
                zaux[i, j] = a[i][j]
        e = X - xhat
        L["aux"] = min(len(dead_idx) / cfg["k_aux"], 1.0) * fvu(e, zaux @ W_dec.T)
    total = L["rec"] + cfg["alpha"] * L["aux"]
    if info["matryoshka"]:
        m_h = int(math.floor(cfg["high_frac"] * m + 0.5))
        L["high"] = fvu(X, z[:, :m_h] @ W_dec[:, :m_h].T + b_dec)
        total += cfg["beta"] * L["high"]

    u = [row / max(float(row.norm()), 1e-8) for row in z]

    def nce(anchor, positive, candidates):
        s = [float(u[anchor] @ u[c]) / cfg["tau"] for c in candidates]
        return -(float(u[anchor] @ u[positive]) / cfg["tau"] - math.log(sum(math.exp(v) for v in s)))
    if x.dim() == 4:
        B, T, N, _ = x.shape
        W = cfg["W"]
        idx = lambda b, t, p: (b * T + t) * N + p
        if info["temporal"]:
            terms = [nce(idx(b, t, p), idx(b, t + 1, p),
                         [idx(b2, t + 1, p2) for b2 in range(B) for p2 in range(N)])
                     for b in range(B) for t in range(T - 1) for p in range(N)]
            L["temp"] = sum(terms) / len(terms)
            total += cfg["lambda_t"] * L["temp"]
        if info["spatial"]:
            terms = [nce(idx(b, t, p), idx(b, t, p + 1),
                         [idx(b2, t, p2) for b2 in range(B) for p2 in range(N)
                          if (b2, p2) != (b, p)])
                     for b in range(B) for t in range(T) for p in range(N) if p % W < W - 1]
            L["spat"] = sum(terms) / len(terms)
            total += cfg["lambda_s"] * L["spat"]
    if info["raster"]:
        P = x.shape[0]
        terms = [nce(2 * i, 2 * i + 1, [2 * j + 1 for j in range(P)]) for i in range(P)]
        L["rast"] = sum(terms) / len(terms)
        total += cfg["lambda_r"] * L["rast"]
    L["total"] = total
    return L


def entmax15_sorted(v):
    """Exact sort-based 1.5-entmax of one row (Peters et al. 2019, Alg. 2)."""
    w = sorted((float(t) / 2.0 for t in v), reverse=True)
    best = None
    for k in range(1, len(w) + 1):
        mean = sum(w[:k]) / k
        ss = sum((t - mean) ** 2 for t in w[:k])
        if 1.0 - ss < 0:
            break
        tau = mean - math.sqrt((1.0 - ss) / k)
        if tau <= w[k - 1]:
            best = tau
    return torch.tensor([max(float(t) / 2.0 - best, 0.0) ** 2 for t in v], dtype=torch.float64)


def self_test(args):
    """Checks of the reference itself. Returns the number of failures."""
    failures = 0

    def report(ok, what):
        nonlocal failures
        failures += not ok
        print(f"self-test {what}: {'ok' if ok else 'FAIL'}", flush=True)

    for variant in R.VARIANTS:
        for index in (0, 1, 3):
            cfg, params, x, dead, _ = tie_free_case(variant, index, args.seed + 1000)
            p64, x64, dead64 = to_torch(params, x, dead)
            label = f"{variant} case {index}"

            # 1. gradcheck of the total loss w.r.t. the parameters, with the
            #    selection masks and AuxK's residual held at their values here
            _, masks = R.forward(cfg, p64, x64, dead64)
            trained = ["W_enc", "b_enc"] if variant == "frozen" else R.PARAM_NAMES

            def total(*ps):
                full = dict(p64, **dict(zip(trained, ps)))
                return R.forward(cfg, full, x64, dead64, masks)[0]["total"]
            ok = torch.autograd.gradcheck(
                total, [p64[p].clone().requires_grad_(True) for p in trained],
                eps=1e-6, atol=1e-6, rtol=1e-5, raise_exception=False)
            report(ok, f"gradcheck {label}")

            # 2. the frozen control: zero decoder gradients
            losses, grads, _ = R.step(cfg, p64, x64, dead64)
            if variant == "frozen":
                report(all(float(grads[p].abs().max()) == 0 for p in ("W_dec", "b_dec")),
                       f"frozen decoder gradient is zero ({label})")

            # 3. explicit-loop recomputation of the losses
            if R.variant_info(variant)["selection"] in ("topk", "batchtopk"):
                naive = naive_losses(cfg, p64, x64, dead64)
                ok = set(naive) == set(losses) and all(
                    abs(naive[kk] - losses[kk]) <= 1e-10 * max(1.0, abs(naive[kk])) for kk in naive)
                report(ok, f"loop-based losses {label}")

            # 4. sparsemax / entmax15 against sort-based formulas
            if variant in ("sparsemax", "entmax15"):
                pre = (x64.reshape(-1, x64.shape[-1]) - p64["b_dec"]) @ p64["W_enc"].T + p64["b_enc"]
                z = R.sparse_code(cfg, pre, R.select(cfg, pre, dead64))
                v = pre / cfg["T_s"]
                if variant == "sparsemax":
                    s, _ = v.sort(dim=1, descending=True)
                    ks = torch.arange(1, v.shape[1] + 1, dtype=v.dtype)
                    kz = ((1 + ks * s) > s.cumsum(1)).sum(1, keepdim=True)
                    tau = (s.cumsum(1).gather(1, kz - 1) - 1) / kz
                    z_sort = torch.clamp(v - tau, min=0)
                else:
                    z_sort = torch.stack([entmax15_sorted(row) for row in v])
                report(float((z - z_sort).abs().max()) < 1e-12, f"{variant} vs sort-based ({label})")

            # 5. the optimizer against torch.optim.Adam
            if cfg["optim_steps"] > 0:
                lt, final, _ = R.optim(cfg, p64, x64, dead64)
                q = {p: p64[p].clone().requires_grad_(p in trained) for p in R.PARAM_NAMES}
                opt = torch.optim.Adam([q[p] for p in trained], lr=cfg["lr"],
                                       betas=(cfg["adam_beta1"], cfg["adam_beta2"]),
                                       eps=cfg["adam_eps"])
                lt2 = []
                for t in range(1, cfg["optim_steps"] + 1):
                    L, _ = R.forward(cfg, q, x64, dead64)
                    lt2.append(float(L["total"]))
                    opt.zero_grad()
                    L["total"].backward()
                    if "W_dec" in trained:
                        with torch.no_grad():
                            q["W_dec"].grad.copy_(R.project_decoder_grad(q["W_dec"].grad, q["W_dec"]))
                    for group in opt.param_groups:
                        group["lr"] = cfg["lr"] * min(1.0, t / cfg["warmup_steps"])
                    opt.step()
                    with torch.no_grad():
                        q["W_dec"].div_(q["W_dec"].norm(dim=0, keepdim=True))
                ok = np.allclose(lt, lt2, rtol=1e-12, atol=0) and all(
                    float((final[p] - q[p].detach()).abs().max()) < 1e-12 for p in R.PARAM_NAMES)
                report(ok, f"optimizer vs torch.optim.Adam ({label})")
    return failures


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stsae", help="path to the stsae binary")
    ap.add_argument("--variants", default=None,
                    help="default: every variant (with --device cuda: CUDA_VARIANTS)")
    ap.add_argument("--cases", type=int, default=8,
                    help="cases per variant (default 8: 4 with a short optimizer run)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=None,
                    help="where cases and outputs go (default tests/ref/cases)")
    ap.add_argument("--emit", metavar="DIR",
                    help="write CASE.h5 + REF.h5 per case into DIR; run no binary")
    ap.add_argument("--f32-ref", action="store_true",
                    help="compare the reference run in float32 instead of a binary")
    ap.add_argument("--self-test", action="store_true",
                    help="check the reference itself (gradcheck, loops, Adam); no binary")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="run `check-step --device D`")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per binary run")
    args = ap.parse_args(argv)
    if args.self_test:
        failures = self_test(args)
        print(f"self-test: {failures} failed", flush=True)
        return 1 if failures else 0
    if not (args.emit or args.stsae or args.f32_ref):
        ap.error("give --stsae PATH (or --emit DIR, --f32-ref, --self-test)")
    if args.variants is None:
        args.variants = ",".join(CUDA_VARIANTS if args.device == "cuda" else R.VARIANTS)
    variants = [v for v in args.variants.split(",") if v]
    for v in variants:
        if v not in R.VARIANTS:
            ap.error(f"unknown variant {v!r}; known: {', '.join(R.VARIANTS)}")
        if args.device == "cuda" and v not in CUDA_VARIANTS:
            ap.error(f"variant {v!r} has no CUDA step yet; covered: {', '.join(CUDA_VARIANTS)}")
    workdir = args.emit or args.workdir or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "ref", "cases")
    os.makedirs(workdir, exist_ok=True)
    stsae = os.path.abspath(args.stsae) if args.stsae else None

    passed = failed = 0
    for variant in variants:
        for index in range(args.cases):
            try:
                ok, lines = run_case(variant, index, args, workdir, stsae)
            except NoDevice as e:
                print(f"no CUDA device: skipped ({e})", flush=True)
                return 77
            print("\n".join(lines), flush=True)
            passed += ok
            failed += not ok
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
