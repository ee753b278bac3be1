"""Plain PyTorch reference for one stsae SAE training step (SPEC section 1 and
the `check-step` contract of section 5, with the agreed extensions: sparsemax,
entmax15 and frozen variants, and a short Adam run on one batch).

Everything here is dense and deliberately simple: codes are dense [n, m]
tensors, the selection (TopK, BatchTopK, AuxK, sparsemax/entmax support) is
computed once without gradients and then treated as a constant mask, and the
gradients come from autograd. It is dtype-generic: the tests run it in float64
against the float32 C code; benchmarks/bench_torch_step.py runs it in float32
as a plain-PyTorch speed baseline. It is independent of the C implementation
(e.g. sparsemax/entmax supports are found by bisection, not by sorting).

Main entry points:
  load_case(path)                      -> cfg, params, x, dead
  write_case(path, cfg, params, x, dead)
  step(cfg, params, x, dead)           -> losses, grads, info
  optim(cfg, params, x, dead, steps)   -> loss_total list, final params, theta
  reference_outputs(cfg, params, x, dead) -> {OUT.h5 dataset path: array}
  selection_margins(cfg, params, x, dead) -> distances to selection boundaries
"""

import math

import h5py
import numpy as np
import torch

# ---------------------------------------------------------------------------
# Variants and configuration
# ---------------------------------------------------------------------------

VARIANTS = [
    "standard", "temporal", "separate", "raster",
    "standard+M", "temporal+M", "separate+M",
    "sparsemax", "entmax15", "frozen",
]

PARAM_NAMES = ["W_enc", "b_enc", "W_dec", "b_dec"]

# Root attributes of CASE.h5 with their types and defaults (None = required).
INT_ATTRS = {"k": None, "k_aux": None, "T": None, "H": None, "W": None,
             "optim_steps": 0, "warmup_steps": 1}
FLOAT_ATTRS = {"alpha": None, "beta": None, "high_frac": None,
               "lambda_t": None, "lambda_s": None, "lambda_r": None,
               "tau": None, "T_s": 1.0, "lr": 0.0,
               "adam_beta1": 0.9, "adam_beta2": 0.999, "adam_eps": 1e-8}


def variant_info(variant):
    """Which pieces of the model a variant uses."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}")
    base = variant[:-2] if variant.endswith("+M") else variant
    if variant in ("sparsemax", "entmax15"):
        selection = variant
    elif variant.endswith("+M"):
        selection = "batchtopk"
    else:
        selection = "topk"
    return {
        "selection": selection,
        "matryoshka": variant.endswith("+M"),
        "aux": selection in ("topk", "batchtopk"),
        "temporal": base in ("temporal", "separate"),   # sparsemax/entmax: see uses_temporal()
        "spatial": base == "separate",
        "raster": base == "raster",
        "frozen": variant == "frozen",
    }


def uses_temporal(cfg, x):
    """L_temp is used by temporal/separate(+M), and by sparsemax/entmax15 when
    the batch is made of whole clips ([B,T,N,d]) and lambda_t > 0."""
    info = variant_info(cfg["variant"])
    if info["temporal"]:
        return True
    return (info["selection"] in ("sparsemax", "entmax15")
            and x.dim() == 4 and cfg["lambda_t"] > 0)


# ---------------------------------------------------------------------------
# HDF5 input/output
# ---------------------------------------------------------------------------

def load_case(path, dtype=torch.float64):
    """Read CASE.h5. Returns (cfg dict, params dict of tensors, x, dead) with
    params and x converted to `dtype` and dead a bool tensor [m]."""
    with h5py.File(path, "r") as f:
        cfg = {}
        v = f.attrs["variant"]
        cfg["variant"] = v.decode() if isinstance(v, bytes) else str(v)
        for name, default in INT_ATTRS.items():
            cfg[name] = int(f.attrs[name]) if name in f.attrs else default
        for name, default in FLOAT_ATTRS.items():
            cfg[name] = float(f.attrs[name]) if name in f.attrs else default
        params = {p: torch.from_numpy(np.asarray(f["params/" + p][()], dtype=np.float32)).to(dtype)
                  for p in PARAM_NAMES}
        x = torch.from_numpy(np.asarray(f["batch/x"][()], dtype=np.float32)).to(dtype)
        dead = torch.from_numpy(np.asarray(f["state/dead"][()]) != 0)
    for name, val in cfg.items():
        if val is None:
            raise KeyError(f"{path}: missing attribute {name}")
    return cfg, params, x, dead


def write_case(path, cfg, params, x, dead):
    """Write CASE.h5: attributes (ints as int64, floats as float64, variant as
    a string), float32 params and batch, uint8 dead mask."""
    with h5py.File(path, "w") as f:
        f.attrs["variant"] = cfg["variant"]
        for name in INT_ATTRS:
            if cfg.get(name) is not None:
                f.attrs[name] = np.int64(cfg[name])
        for name in FLOAT_ATTRS:
            if cfg.get(name) is not None:
                f.attrs[name] = np.float64(cfg[name])
        for p in PARAM_NAMES:
            f.create_dataset("params/" + p, data=_np(params[p], np.float32))
        f.create_dataset("batch/x", data=_np(x, np.float32))
        f.create_dataset("state/dead", data=_np(dead, np.uint8))


def write_out(path, outputs):
    """Write an OUT.h5-shaped file from {dataset path: numpy value}."""
    with h5py.File(path, "w") as f:
        for name, val in outputs.items():
            f.create_dataset(name, data=val)


def _np(t, dtype):
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().numpy()
    return np.asarray(t).astype(dtype)


# ---------------------------------------------------------------------------
# Selection (no gradients): masks that are then held constant
# ---------------------------------------------------------------------------

def topk_mask(a, k):
    """Bool mask of the k largest entries of each row of a."""
    mask = torch.zeros(a.shape, dtype=torch.bool, device=a.device)
    if k > 0:
        mask.scatter_(1, a.topk(k, dim=1).indices, True)
    return mask


def _bisect_threshold(w, power, max_iters=200):
    """Threshold t with sum_i max(w_i - t, 0)^power = 1 for each row of w,
    by bisection in float64 (power 1: sparsemax, power 2: entmax-1.5 on w=v/2).
    The root lies in [max(w) - 1, max(w)]; iterate until the brackets stop
    shrinking (adjacent doubles), so the support {w > t} is exact."""
    w = w.double()
    hi = w.max(dim=1, keepdim=True).values
    lo = hi - 1.0
    for _ in range(max_iters):
        mid = 0.5 * (lo + hi)
        f = torch.relu(w - mid).pow(power).sum(dim=1, keepdim=True) - 1.0
        above = f >= 0          # root is at or above mid
        new_lo = torch.where(above, mid, lo)
        new_hi = torch.where(above, hi, mid)
        if torch.equal(new_lo, lo) and torch.equal(new_hi, hi):
            break
        lo, hi = new_lo, new_hi
    return 0.5 * (lo + hi)


def _support_scores(cfg, pre):
    """Scores whose per-row threshold defines the sparsemax/entmax support:
    v = pre/T_s for sparsemax, w = v/2 for entmax15; and the power."""
    v = pre / cfg["T_s"]
    if cfg["variant"] == "sparsemax":
        return v, 1
    return v / 2.0, 2


def select(cfg, pre, dead):
    """Compute the (constant) selection masks from the pre-activations.
    Returns dict with 'keep' [n,m] bool (the support for sparsemax/entmax15),
    'min_kept' (BatchTopK only), and for AuxK with dead latents 'dead_idx'
    (their indices) and 'aux' [n, n_dead] bool over those columns."""
    info = variant_info(cfg["variant"])
    pre = pre.detach()
    a = torch.relu(pre)
    n, m = a.shape
    out = {"keep": None, "aux": None, "dead_idx": None, "min_kept": None}
    with torch.no_grad():
        if info["selection"] == "topk":
            out["keep"] = topk_mask(a, cfg["k"])
        elif info["selection"] == "batchtopk":
            flat = a.reshape(-1)
            K = cfg["k"] * n
            # (k*n)-th largest value = (n*m - K + 1)-th smallest
            v = flat.kthvalue(flat.numel() - K + 1).values
            out["keep"] = (a >= v) & (a > 0)
            out["min_kept"] = float(a[out["keep"]].min()) if out["keep"].any() else 0.0
        else:
            w, power = _support_scores(cfg, pre)
            out["keep"] = w.double() > _bisect_threshold(w, power)
        if info["aux"]:
            n_dead = int(dead.sum())
            if n_dead > 0:
                k_eff = min(cfg["k_aux"], n_dead)
                out["dead_idx"] = torch.nonzero(dead).reshape(-1)
                out["aux"] = topk_mask(a[:, out["dead_idx"]], k_eff)
    return out


# ---------------------------------------------------------------------------
# Forward pass with fixed masks
# ---------------------------------------------------------------------------

def fvu(x, y):
    """Fraction of variance unexplained over the batch (rows are tokens)."""
    return ((x - y) ** 2).sum() / ((x - x.mean(dim=0, keepdim=True)) ** 2).sum()


def sparse_code(cfg, pre, masks):
    """z as a differentiable function of pre with the selection fixed."""
    sel = variant_info(cfg["variant"])["selection"]
    if sel in ("topk", "batchtopk"):
        return torch.where(masks["keep"], torch.relu(pre), 0.0)
    S = masks["keep"].to(pre.dtype)
    size = S.sum(dim=1, keepdim=True).clamp(min=1.0)
    v = pre / cfg["T_s"]
    if sel == "sparsemax":
        # sum_S (v_i - tau) = 1
        tau = ((v * S).sum(dim=1, keepdim=True) - 1.0) / size
        return (v - tau) * S
    # entmax-1.5: z_i = (w_i - tau)^2 on S with w = v/2 and sum_S (w_i - tau)^2 = 1:
    # sum_S (w_i - mean)^2 + |S| (mean - tau)^2 = 1, root below min_S w.
    w = v / 2.0
    mean = (w * S).sum(dim=1, keepdim=True) / size
    ss = (((w - mean) * S) ** 2).sum(dim=1, keepdim=True)
    tau = mean - torch.sqrt((1.0 - ss) / size)
    return ((w - tau) ** 2) * S


def unit_codes(z):
    """u = z / max(||z||, 1e-8) per row; the clamp is applied to ||z||^2 so the
    gradient stays finite (and zero) for an all-zero code."""
    return z / torch.sqrt((z * z).sum(dim=1, keepdim=True).clamp(min=1e-16))


def infonce_rows(logits, positive):
    """-log softmax(logits[i])[positive[i]] for every row i."""
    logp = torch.log_softmax(logits, dim=1)
    return -logp.gather(1, positive.reshape(-1, 1)).reshape(-1)


def temporal_loss(u, tau):
    """u [B,T,N,m]. Anchor (b,t,p), t<T-1; positive (b,t+1,p); candidates
    all (b',t+1,p'). Mean over the B*(T-1)*N anchors."""
    B, T, N, m = u.shape
    U = u.transpose(0, 1).reshape(T, B * N, m)          # per step: rows (b, p)
    logits = torch.bmm(U[:-1], U[1:].transpose(1, 2)) / tau   # [T-1, BN, BN]
    diag = torch.arange(B * N, device=u.device)
    logp = torch.log_softmax(logits, dim=2)
    return -logp[:, diag, diag].mean()


def spatial_loss(u, tau, W):
    """u [B,T,N,m], N = H*W, p = r*W + c. Anchor (b,t,p) with c < W-1,
    positive (b,t,p+1); candidates every (b',t,p') except the anchor itself."""
    B, T, N, m = u.shape
    U = u.transpose(0, 1).reshape(T, B * N, m)
    logits = torch.bmm(U, U.transpose(1, 2)) / tau      # [T, BN, BN]
    eye = torch.eye(B * N, dtype=torch.bool, device=u.device)
    logits = logits.masked_fill(eye, float("-inf"))
    logp = torch.log_softmax(logits, dim=2)
    rows = torch.arange(B * N, device=u.device)
    anchors = rows[(rows % N) % W < W - 1]              # rows (b, p) with c < W-1
    return -logp[:, anchors, anchors + 1].mean()


def raster_loss(u, tau):
    """u [P,2,m]: anchor u[i,0], positive u[i,1], candidates u[:,1]."""
    logits = u[:, 0] @ u[:, 1].T / tau
    return infonce_rows(logits, torch.arange(u.shape[0], device=u.device)).mean()


def forward(cfg, params, x, dead, masks=None):
    """All loss terms of one step as differentiable functions of params (the
    selection masks are constants; computed here if not given). The masks
    dict returned also holds 'residual', AuxK's constant residual e.
    Returns (losses dict of 0-d tensors incl. 'total', masks)."""
    info = variant_info(cfg["variant"])
    W_enc, b_enc, W_dec, b_dec = (params[p] for p in PARAM_NAMES)
    if info["frozen"]:
        W_dec, b_dec = W_dec.detach(), b_dec.detach()
    d = x.shape[-1]
    X = x.reshape(-1, d)                                 # all tokens of the batch
    pre = (X - b_dec) @ W_enc.T + b_enc
    if masks is None:
        masks = select(cfg, pre, dead)
    z = sparse_code(cfg, pre, masks)
    xhat = z @ W_dec.T + b_dec

    L = {"rec": fvu(X, xhat)}
    total = L["rec"]

    # AuxK on dead latents, residual treated as a constant
    if info["aux"]:
        n_dead = int(dead.sum())
        if n_dead == 0:
            L["aux"] = torch.zeros((), dtype=x.dtype)
        else:
            # dense on the dead columns only: zaux keeps the k_eff largest a_j, j dead
            idx = masks["dead_idx"]
            zaux = torch.where(masks["aux"], torch.relu(pre[:, idx]), 0.0)
            # residual as a constant (stop-gradient); a caller may hold it
            # fixed across calls like the masks (gradcheck does)
            if masks.get("residual") is None:
                masks["residual"] = (X - xhat).detach()
            e = masks["residual"]
            ehat = zaux @ W_dec[:, idx].T
            L["aux"] = min(n_dead / cfg["k_aux"], 1.0) * fvu(e, ehat)
        total = total + cfg["alpha"] * L["aux"]
    else:
        L["aux"] = torch.zeros((), dtype=x.dtype)

    # Matryoshka: high-level group = the first m_h latents
    if info["matryoshka"]:
        m = W_dec.shape[1]
        m_h = int(math.floor(cfg["high_frac"] * m + 0.5))
        xhat_h = z[:, :m_h] @ W_dec[:, :m_h].T + b_dec
        L["high"] = fvu(X, xhat_h)
        total = total + cfg["beta"] * L["high"]

    # Contrastive terms on unit codes
    if uses_temporal(cfg, x) or info["spatial"] or info["raster"]:
        u = unit_codes(z).reshape(*x.shape[:-1], -1)
        if uses_temporal(cfg, x):
            L["temp"] = temporal_loss(u, cfg["tau"])
            total = total + cfg["lambda_t"] * L["temp"]
        if info["spatial"]:
            L["spat"] = spatial_loss(u, cfg["tau"], cfg["W"])
            total = total + cfg["lambda_s"] * L["spat"]
        if info["raster"]:
            L["rast"] = raster_loss(u, cfg["tau"])
            total = total + cfg["lambda_r"] * L["rast"]

    L["total"] = total
    return L, masks


def step(cfg, params, x, dead, masks=None):
    """One check-step: losses (python floats), raw gradients (tensors shaped
    like params, zero for a frozen decoder) and info {'min_kept', 'masks'}."""
    leaves = {p: params[p].detach().clone().requires_grad_(True) for p in PARAM_NAMES}
    L, masks = forward(cfg, leaves, x, dead, masks)
    g = torch.autograd.grad(L["total"], [leaves[p] for p in PARAM_NAMES], allow_unused=True)
    grads = {p: (gi if gi is not None else torch.zeros_like(leaves[p])).detach()
             for p, gi in zip(PARAM_NAMES, g)}
    losses = {name: float(val.detach()) for name, val in L.items()}
    return losses, grads, {"min_kept": masks["min_kept"], "masks": masks}


# ---------------------------------------------------------------------------
# Optimizer: projection, Adam (as torch.optim.Adam), decoder renormalization
# ---------------------------------------------------------------------------

def project_decoder_grad(g, W_dec):
    """Remove from each decoder column's gradient its component along the column."""
    coef = (g * W_dec).sum(dim=0, keepdim=True) / (W_dec * W_dec).sum(dim=0, keepdim=True)
    return g - coef * W_dec


def optim(cfg, params, x, dead, steps=None, on_step=None):
    """Run `steps` (default cfg['optim_steps']) training steps on one batch.
    Returns (loss_total list [recorded before each update], final params, theta
    [+M variants, else None]). on_step(t=t, params=params_before, grads=projected
    grads, v_hat=Adam's v_hat, lr=lr_t) is an optional hook called after every
    update (the tests use it to check for ties and float32 sensitivity)."""
    steps = cfg["optim_steps"] if steps is None else steps
    frozen = variant_info(cfg["variant"])["frozen"]
    b1, b2, eps = cfg["adam_beta1"], cfg["adam_beta2"], cfg["adam_eps"]
    p = {name: params[name].detach().clone() for name in PARAM_NAMES}
    mom = {name: torch.zeros_like(p[name]) for name in PARAM_NAMES}
    vel = {name: torch.zeros_like(p[name]) for name in PARAM_NAMES}
    trained = ["W_enc", "b_enc"] if frozen else PARAM_NAMES
    losses_total, theta = [], None
    for t in range(1, steps + 1):
        losses, grads, info = step(cfg, p, x, dead)
        losses_total.append(losses["total"])
        if info["min_kept"] is not None:
            theta = info["min_kept"] if t == 1 else 0.99 * theta + 0.01 * info["min_kept"]
        grads["W_dec"] = project_decoder_grad(grads["W_dec"], p["W_dec"])
        lr_t = cfg["lr"] * min(1.0, t / cfg["warmup_steps"])
        v_hat = {}
        before = {name: p[name].clone() for name in PARAM_NAMES}
        for name in trained:
            g = grads[name]
            mom[name] = b1 * mom[name] + (1 - b1) * g
            vel[name] = b2 * vel[name] + (1 - b2) * g * g
            m_hat = mom[name] / (1 - b1 ** t)
            v_hat[name] = vel[name] / (1 - b2 ** t)
            p[name] = p[name] - lr_t * m_hat / (torch.sqrt(v_hat[name]) + eps)
        p["W_dec"] = p["W_dec"] / p["W_dec"].norm(dim=0, keepdim=True)
        if on_step is not None:
            on_step(t=t, params=before, grads=grads, v_hat=v_hat, lr=lr_t)
    return losses_total, p, theta


# ---------------------------------------------------------------------------
# Reference OUT.h5 content and tie diagnostics
# ---------------------------------------------------------------------------

def reference_outputs(cfg, params, x, dead):
    """{dataset path: numpy value} exactly as OUT.h5 should hold them."""
    losses, grads, _ = step(cfg, params, x, dead)
    out = {}
    for name in ("rec", "aux", "total", "high", "temp", "spat", "rast"):
        if name in losses:
            out["loss/" + name] = np.float64(losses[name])
    for name in PARAM_NAMES:
        out["grad/" + name] = _np(grads[name], np.float32)
    if cfg["optim_steps"] > 0:
        lt, final, theta = optim(cfg, params, x, dead)
        out["optim/loss_total"] = np.asarray(lt, dtype=np.float64)
        for name in PARAM_NAMES:
            out["optim/" + name] = _np(final[name], np.float32)
        if variant_info(cfg["variant"])["matryoshka"]:
            out["optim/theta"] = np.float64(theta)
    return out


def _keep_margin(pre_rows, k):
    """Smallest distance (in pre units) of any row to a change of the set of
    positive entries among the k largest of relu(pre_rows[r]): the k-th vs the
    (k+1)-th value, and entries near 0 that would enter or leave that set."""
    s = pre_rows.sort(dim=1, descending=True).values
    M = s.shape[1]
    best = math.inf
    for row in s.tolist():
        c = sum(1 for v in row if v > 0)
        q = min(k, c)
        if q > 0:
            best = min(best, row[q - 1])                 # kept value away from 0
        if q < M:
            if q == k:
                best = min(best, row[q - 1] - max(row[q], 0.0))   # k-th vs (k+1)-th
            else:
                best = min(best, -row[q])                # largest non-positive away from 0
    return best


def selection_margins(cfg, params, x, dead):
    """Distances of the selection boundaries, relative to max(a) of the batch:
    'token': per-token TopK and AuxK (k-th vs (k+1)-th value, kept values vs 0)
             and the sparsemax support;
    'batch': the BatchTopK threshold;
    'smooth': the entmax15 support (entmax-1.5 is C1 at its support boundary,
             so a near-boundary entry changes z and the gradient only by about
             its distance; it needs a much smaller margin).
    Cases with small margins are ties: float32 and float64 may select
    differently, so the tests regenerate them."""
    info = variant_info(cfg["variant"])
    d = x.shape[-1]
    X = x.reshape(-1, d).double()
    P = {n: params[n].double() for n in PARAM_NAMES}
    pre = (X - P["b_dec"]) @ P["W_enc"].T + P["b_enc"]
    scale = float(torch.relu(pre).max())
    out = {"token": math.inf, "batch": math.inf, "smooth": math.inf}
    if scale <= 0:
        return {key: 0.0 for key in out}
    if info["selection"] == "topk":
        out["token"] = _keep_margin(pre, cfg["k"])
    elif info["selection"] == "batchtopk":
        out["batch"] = _keep_margin(pre.reshape(1, -1), cfg["k"] * pre.shape[0])
    else:
        w, power = _support_scores(cfg, pre)
        t = _bisect_threshold(w, power)
        S = w > t
        unit = cfg["T_s"] * (1.0 if power == 1 else 2.0)  # w units -> pre units
        inside = torch.where(S, w - t, torch.full_like(w, math.inf)).min()
        outside = torch.where(~S, t - w, torch.full_like(w, math.inf)).min()
        key = "token" if power == 1 else "smooth"
        out[key] = unit * min(float(inside), float(outside))
    if info["aux"] and int(dead.sum()) > 0:
        k_eff = min(cfg["k_aux"], int(dead.sum()))
        out["token"] = min(out["token"], _keep_margin(pre[:, dead], k_eff))
    return {key: val / scale for key, val in out.items()}
