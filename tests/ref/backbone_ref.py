"""Plain PyTorch reference for the stsae backbones (SPEC section 4,
reference/backbones.md): DINOv2 and VideoMAE written from their Hugging Face
definitions with torch.nn.functional only (not transformers), plus the
`pixels` and `motion` backbones, a safetensors writer and Hugging Face-style random
checkpoints.

It is dtype-generic: tests/test_backbone.py runs it in float64 against the
float32 C code; benchmarks/bench_torch_backbone.py runs it in float32 as the
PyTorch speed baseline. It shares nothing with the C code: convolutions for
the patch embeddings, F.interpolate for the position grid, batched matmuls
for attention, F.gelu / F.layer_norm.

Main entry points:
  dinov2_config(**sizes), videomae_config(**sizes)   -> config.json dict
  random_weights(cfg, seed, prefix)                   -> {name: float32 array}
  write_model(dir, cfg, tensors)                      config.json + model.safetensors
  write_safetensors(path, tensors)
  forward(cfg, tensors, pixels, layers, final_norm, pos_interp, dtype)
                                                      -> {layer: [clips, T, N, d]}
  pixels_forward(pixels, patch)                       -> [clips, T, N, 3 p^2]
  motion_forward(pixels, patch)                       -> [clips, T/2, N, 324]
  fnv1a64(path)                                       -> "fnv1a64:<16 hex>"
"""

import functools
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

# ---------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------

DTYPES = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("float64"): "F64",
          np.dtype("int64"): "I64"}


def write_safetensors(path, tensors):
    """tensors: {name: numpy array}, written in dict order, little-endian;
    the JSON header is padded with spaces to a multiple of 8 bytes."""
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": DTYPES[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in blobs:
            f.write(data)


def write_model(directory, cfg, tensors):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_safetensors(os.path.join(directory, "model.safetensors"), tensors)


def fnv1a64(path):
    """64-bit FNV-1a of a file's bytes, as the C loader prints it."""
    h = 0xCBF29CE484222325
    with open(path, "rb") as f:
        for byte in f.read():
            h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"fnv1a64:{h:016x}"


def dinov2_config(hidden=32, layers=3, heads=4, mlp_ratio=4, patch=4, image=20, eps=1e-6,
                  qkv_bias=True):
    """A config.json as Dinov2Model saves it (facebook/dinov2-base keys)."""
    return {"architectures": ["Dinov2Model"], "model_type": "dinov2",
            "hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
            "mlp_ratio": mlp_ratio, "hidden_act": "gelu", "layer_norm_eps": eps,
            "layerscale_value": 1.0, "use_swiglu_ffn": False, "qkv_bias": qkv_bias,
            "image_size": image, "patch_size": patch, "num_channels": 3,
            "drop_path_rate": 0.0, "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0, "initializer_range": 0.02,
            "torch_dtype": "float32"}


def videomae_config(hidden=32, layers=3, heads=4, intermediate=64, patch=4, image=16, frames=4,
                    tubelet=2, eps=1e-12, qkv_bias=True, use_mean_pooling=False):
    """A config.json as VideoMAEForPreTraining saves it (MCG-NJU/videomae-base keys)."""
    return {"architectures": ["VideoMAEForPreTraining"], "model_type": "videomae",
            "hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
            "intermediate_size": intermediate, "hidden_act": "gelu", "layer_norm_eps": eps,
            "qkv_bias": qkv_bias, "image_size": image, "patch_size": patch, "num_channels": 3,
            "num_frames": frames, "tubelet_size": tubelet, "use_mean_pooling": use_mean_pooling,
            "norm_pix_loss": True, "decoder_hidden_size": 16, "decoder_intermediate_size": 32,
            "decoder_num_attention_heads": 2, "decoder_num_hidden_layers": 1,
            "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
            "initializer_range": 0.02, "torch_dtype": "float32"}


def random_weights(cfg, seed=0, prefix=None, scale=1.0):
    """Random float32 tensors under Hugging Face names. Linear weights have
    std scale/sqrt(fan_in), so activations stay O(1) through the blocks;
    norms, biases and LayerScale are perturbed away from their trivial values
    so a wrong or missing one shows. prefix: None for the usual one ("" for
    DINOv2, "videomae." for VideoMAE, which also gets decoder tensors that
    the C loader must ignore)."""
    rng = np.random.default_rng(seed)
    D, L = cfg["hidden_size"], cfg["num_hidden_layers"]
    p = cfg["patch_size"]
    f32 = lambda a: np.asarray(a, dtype=np.float32)
    lin = lambda o, i: f32(rng.standard_normal((o, i)) * scale / math.sqrt(i))
    vec = lambda n, s=0.1, mu=0.0: f32(mu + s * rng.standard_normal(n))
    t = {}
    if cfg["model_type"] == "dinov2":
        pre = "" if prefix is None else prefix
        F_ = int(D * cfg["mlp_ratio"])
        M = cfg["image_size"] // p
        t[pre + "embeddings.cls_token"] = f32(rng.standard_normal((1, 1, D)))
        t[pre + "embeddings.mask_token"] = f32(np.zeros((1, D)))
        t[pre + "embeddings.position_embeddings"] = f32(rng.standard_normal((1, 1 + M * M, D)))
        t[pre + "embeddings.patch_embeddings.projection.weight"] = \
            f32(rng.standard_normal((D, 3, p, p)) / math.sqrt(3 * p * p))
        t[pre + "embeddings.patch_embeddings.projection.bias"] = vec(D)
        for i in range(L):
            b = f"{pre}encoder.layer.{i}."
            t[b + "norm1.weight"], t[b + "norm1.bias"] = vec(D, 0.2, 1.0), vec(D)
            for proj in ("query", "key", "value"):
                t[b + f"attention.attention.{proj}.weight"] = lin(D, D)
                if cfg.get("qkv_bias", True):
                    t[b + f"attention.attention.{proj}.bias"] = vec(D, 0.3)
            t[b + "attention.output.dense.weight"], t[b + "attention.output.dense.bias"] = lin(D, D), vec(D)
            t[b + "layer_scale1.lambda1"] = vec(D, 0.3, 0.6)
            t[b + "norm2.weight"], t[b + "norm2.bias"] = vec(D, 0.2, 1.0), vec(D)
            t[b + "mlp.fc1.weight"], t[b + "mlp.fc1.bias"] = lin(F_, D), vec(F_)
            t[b + "mlp.fc2.weight"], t[b + "mlp.fc2.bias"] = lin(D, F_), vec(D)
            t[b + "layer_scale2.lambda1"] = vec(D, 0.3, 0.6)
        t[pre + "layernorm.weight"], t[pre + "layernorm.bias"] = vec(D, 0.2, 1.0), vec(D)
        return t
    pre = "videomae." if prefix is None else prefix
    kt, F_ = cfg["tubelet_size"], cfg["intermediate_size"]
    if pre:  # pretraining extras, first and odd-sized, so later tensors sit unaligned
        t["mask_token"] = np.zeros((1, 1, 3), dtype=np.float16)
    t[pre + "embeddings.patch_embeddings.projection.weight"] = \
        f32(rng.standard_normal((D, 3, kt, p, p)) / math.sqrt(3 * kt * p * p))
    t[pre + "embeddings.patch_embeddings.projection.bias"] = vec(D)
    for i in range(L):
        b = f"{pre}encoder.layer.{i}."
        t[b + "layernorm_before.weight"], t[b + "layernorm_before.bias"] = vec(D, 0.2, 1.0), vec(D)
        for proj in ("query", "key", "value"):
            t[b + f"attention.attention.{proj}.weight"] = lin(D, D)
        if cfg.get("qkv_bias", True):
            t[b + "attention.attention.q_bias"] = vec(D, 0.3)
            t[b + "attention.attention.v_bias"] = vec(D, 0.3)
        t[b + "attention.output.dense.weight"], t[b + "attention.output.dense.bias"] = lin(D, D), vec(D)
        t[b + "layernorm_after.weight"], t[b + "layernorm_after.bias"] = vec(D, 0.2, 1.0), vec(D)
        t[b + "intermediate.dense.weight"], t[b + "intermediate.dense.bias"] = lin(F_, D), vec(F_)
        t[b + "output.dense.weight"], t[b + "output.dense.bias"] = lin(D, F_), vec(D)
    if not cfg.get("use_mean_pooling", True):
        t[pre + "layernorm.weight"], t[pre + "layernorm.bias"] = vec(D, 0.2, 1.0), vec(D)
    if pre:
        Dd = cfg["decoder_hidden_size"]
        t["encoder_to_decoder.weight"] = lin(Dd, D)
        t["decoder.norm.weight"], t["decoder.norm.bias"] = vec(Dd, 0.2, 1.0), vec(Dd)
        t["decoder.head.weight"] = lin(3 * kt * p * p, Dd)
        t["decoder.head.bias"] = vec(3 * kt * p * p)
    return t


# ---------------------------------------------------------------------------
# Forward passes
# ---------------------------------------------------------------------------

def _attention(h, wq, bq, wk, bk, wv, bv, heads):
    B, n, D = h.shape
    hd = D // heads
    split = lambda y: y.view(B, n, heads, hd).transpose(1, 2)        # [B, heads, n, hd]
    q, k, v = (split(F.linear(h, w, b)) for w, b in ((wq, bq), (wk, bk), (wv, bv)))
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hd)
    return torch.matmul(scores.softmax(dim=-1), v).transpose(1, 2).reshape(B, n, D)


def _block(h, get, b, cfg, dinov2):
    """One pre-norm block; get(name) returns the tensor, b is the layer prefix."""
    D, eps = cfg["hidden_size"], cfg["layer_norm_eps"]
    opt = lambda name: get(name) if get.has(name) else None
    if dinov2:
        att = lambda leaf: f"{b}attention.attention.{leaf}"
        qkv = [(get(att(f"{p}.weight")), opt(att(f"{p}.bias"))) for p in ("query", "key", "value")]
        n1, n2 = "norm1", "norm2"
        fc1, fc2 = "mlp.fc1", "mlp.fc2"
    else:  # BEiT-style: q_bias, v_bias, no key bias
        att = lambda leaf: f"{b}attention.attention.{leaf}"
        qkv = [(get(att("query.weight")), opt(att("q_bias"))), (get(att("key.weight")), None),
               (get(att("value.weight")), opt(att("v_bias")))]
        n1, n2 = "layernorm_before", "layernorm_after"
        fc1, fc2 = "intermediate.dense", "output.dense"
    x = F.layer_norm(h, (D,), get(f"{b}{n1}.weight"), get(f"{b}{n1}.bias"), eps)
    a = _attention(x, *qkv[0], *qkv[1], *qkv[2], cfg["num_attention_heads"])
    a = F.linear(a, get(f"{b}attention.output.dense.weight"), get(f"{b}attention.output.dense.bias"))
    h = h + (get(f"{b}layer_scale1.lambda1") * a if dinov2 else a)
    x = F.layer_norm(h, (D,), get(f"{b}{n2}.weight"), get(f"{b}{n2}.bias"), eps)
    m = F.linear(F.gelu(F.linear(x, get(f"{b}{fc1}.weight"), get(f"{b}{fc1}.bias"))),
                 get(f"{b}{fc2}.weight"), get(f"{b}{fc2}.bias"))
    return h + (get(f"{b}layer_scale2.lambda1") * m if dinov2 else m)


@functools.lru_cache(maxsize=4)
def sinusoid_table(n_position, d_hid):
    """VideoMAE's get_sinusoid_encoding_table (numpy float64, then float32);
    cached, as the model builds it once."""
    angle = np.array([[pos / np.power(10000, 2 * (j // 2) / d_hid) for j in range(d_hid)]
                      for pos in range(n_position)])
    angle[:, 0::2] = np.sin(angle[:, 0::2])
    angle[:, 1::2] = np.cos(angle[:, 1::2])
    return torch.FloatTensor(angle).unsqueeze(0)


def dinov2_pos(pos, H, W, pos_interp):
    """Patch position embeddings [1, H*W, D] from the stored [1, 1+M*M, D]:
    unchanged when the grid matches, else F.interpolate bicubic as HF >= 4.45
    (size=) or the original DINOv2 / HF < 4.45 (scale_factor=(H+0.1)/M)."""
    M = int(math.sqrt(pos.shape[1] - 1))
    D = pos.shape[2]
    if H * W == M * M and H == W:
        return pos[:, 1:]
    grid = pos[:, 1:].reshape(1, M, M, D).permute(0, 3, 1, 2)
    if pos_interp == "hf":
        out = F.interpolate(grid, size=(H, W), mode="bicubic", align_corners=False)
    else:
        out = F.interpolate(grid, scale_factor=((H + 0.1) / M, (W + 0.1) / M), mode="bicubic",
                            align_corners=False)
        assert out.shape[2:] == (H, W)
    return out.permute(0, 2, 3, 1).reshape(1, H * W, D)


class _Getter:
    """Tensors by name under a prefix, converted to dtype (on device) once."""

    def __init__(self, tensors, prefix, dtype, device=None):
        self.tensors, self.prefix, self.dtype, self.device, self.cache = tensors, prefix, dtype, device, {}

    def has(self, name):
        return self.prefix + name in self.tensors

    def __call__(self, name):
        if name not in self.cache:
            self.cache[name] = torch.from_numpy(np.asarray(self.tensors[self.prefix + name])).to(
                device=self.device, dtype=self.dtype)
        return self.cache[name]


def find_prefix(cfg, tensors):
    mt = cfg["model_type"]
    return f"{mt}." if f"{mt}.embeddings.patch_embeddings.projection.weight" in tensors else ""


def forward(cfg, tensors, pixels, layers, final_norm=False, pos_interp="hf", dtype=torch.float64, device=None):
    """pixels [clips, T_in, 3, S, S] -> {layer: tensor [clips, T, N, d]}: the
    output of block `layer` (HF hidden_states[layer+1]), patch tokens only,
    optionally through the model's final LayerNorm; on `device` (a torch
    device, default the CPU: benchmarks/bench_torch_backbone.py --device)."""
    dinov2 = cfg["model_type"] == "dinov2"
    get = _Getter(tensors, find_prefix(cfg, tensors), dtype, device)
    x = torch.as_tensor(pixels).to(device=device, dtype=dtype)
    clips, T_in, _, S, _ = x.shape
    D, p = cfg["hidden_size"], cfg["patch_size"]
    w_pe, b_pe = get("embeddings.patch_embeddings.projection.weight"), get("embeddings.patch_embeddings.projection.bias")
    if dinov2:                                    # every frame is an image
        e = F.conv2d(x.reshape(clips * T_in, 3, S, S), w_pe, b_pe, stride=p)   # [B, D, H, W]
        H, W = e.shape[2:]
        e = e.flatten(2).transpose(1, 2)
        pos = get("embeddings.position_embeddings")
        cls = (get("embeddings.cls_token") + pos[:, :1]).expand(e.shape[0], 1, D)
        h = torch.cat([cls, e + dinov2_pos(pos, H, W, pos_interp)], dim=1)
        T, skip = T_in, 1
    else:                                         # the clip is one sequence (t, h, w)
        kt = cfg["tubelet_size"]
        e = F.conv3d(x.permute(0, 2, 1, 3, 4), w_pe, b_pe, stride=(kt, p, p))  # [clips, D, T, H, W]
        T, H, W = e.shape[2:]
        e = e.flatten(2).transpose(1, 2)
        h = e + sinusoid_table(e.shape[1], D).to(device=e.device, dtype=dtype)
        skip = 0
    out = {}
    for layer in range(max(layers) + 1):
        h = _block(h, get, f"encoder.layer.{layer}.", cfg, dinov2)
        if layer in layers:
            y = h
            if final_norm:
                y = F.layer_norm(y, (D,), get("layernorm.weight"), get("layernorm.bias"), cfg["layer_norm_eps"])
            out[layer] = y[:, skip:].reshape(clips, T, H * W, D)
    return out


def pixels_forward(pixels, patch):
    """The built-in pixels backbone: [clips, T, 3, S, S] -> [clips, T, (S/p)^2, 3 p^2],
    each token a patch's values in (channel, row, column) order."""
    x = np.asarray(pixels)
    clips, T, C, S, _ = x.shape
    G = S // patch
    x = x.reshape(clips, T, C, G, patch, G, patch)            # c, gy, ky, gx, kx
    return x.transpose(0, 1, 3, 5, 2, 4, 6).reshape(clips, T, G * G, C * patch * patch)


def motion_forward(pixels, patch):
    """The built-in motion backbone (src/vit/motion.c's definition), written
    from the definition and not from the C code's structure: each complex
    Gabor is one full 2-D kernel (not two 1-D passes), applied as a float64
    convolution at every pixel of the frame padded by np.pad(mode="symmetric"),
    then read at the sample points; cells are averaged with explicit masks.
    [clips, T_in, 3, S, S] -> [clips, T_in/2, (S/p)^2, 4 * 81]."""
    x = np.asarray(pixels, dtype=np.float64)
    clips, T_in, _, S, _ = x.shape
    T, G, half = T_in // 2, S // patch, patch // 2
    Y = 0.299 * x[:, :, 0] + 0.587 * x[:, :, 1] + 0.114 * x[:, :, 2]       # [clips, T_in, S, S]
    cell = np.arange(S) // half                                             # cell index of a coordinate
    out = np.zeros((clips, T, G * 2, G * 2, 81))                             # by frame cell (cy, cx)
    for s in range(3):
        lam = patch / 4 * 2 ** s
        sigma = 0.56 * lam
        h = math.ceil(3 * sigma)
        st = max(1, math.floor(lam / 4))
        pos = np.arange(st // 2, S, st)
        q = np.arange(-h, h + 1)
        env = np.exp(-q ** 2 / (2 * sigma ** 2))
        env2 = np.outer(env, env) / env.sum() ** 2                          # [qy, qx]
        pad = np.pad(Y, ((0, 0), (0, 0), (h, h), (h, h)), mode="symmetric")
        inp = torch.from_numpy(pad.reshape(-1, 1, S + 2 * h, S + 2 * h))
        count = np.zeros((G * 2, G * 2))
        for i in pos:
            for j in pos:
                count[cell[i], cell[j]] += 1
        for o in range(8):
            th = o * math.pi / 8
            phase = 2 * math.pi * (q[None, :] * math.cos(th) + q[:, None] * math.sin(th)) / lam
            k = np.stack([env2 * np.cos(phase), env2 * np.sin(phase)])[:, None]   # [2, 1, qy, qx]
            r = F.conv2d(inp, torch.from_numpy(k)).numpy().reshape(clips, T_in, 2, S, S)
            z = r[:, :, 0] + 1j * r[:, :, 1]                                  # [clips, T_in, S, S]
            z0, z1 = z[:, 0::2][:, :, pos][:, :, :, pos], z[:, 1::2][:, :, pos][:, :, :, pos]
            cross = (z1 * np.conj(z0)).imag
            vals = [np.sqrt(np.maximum(cross, 0)), np.sqrt(np.maximum(-cross, 0)), (np.abs(z0) + np.abs(z1)) / 2]
            for a, i in enumerate(pos):
                for b, j in enumerate(pos):
                    for v in range(3):
                        out[:, :, cell[i], cell[j], (s * 8 + o) * 3 + v] += vals[v][:, :, a, b] / count[cell[i], cell[j]]
    x0, x1 = x[:, 0::2], x[:, 1::2]                                          # [clips, T, 3, S, S]
    dv = x1 - x0
    for c in range(3):
        for v, val in enumerate([np.maximum(dv[:, :, c], 0), np.maximum(-dv[:, :, c], 0), (x0[:, :, c] + x1[:, :, c]) / 2]):
            out[..., 72 + c * 3 + v] = val.reshape(clips, T, G * 2, half, G * 2, half).mean(axis=(3, 5))
    e = out[..., 2:72:3].mean(axis=(2, 3, 4))                               # [clips, T]
    gain = 1.0 / (e + 1e-3)
    out[..., :72] *= gain[:, :, None, None, None]
    for c in range(3):
        out[..., 72 + c * 3: 72 + c * 3 + 2] *= gain[:, :, None, None, None]
    # frame cells -> tokens (r, c) of 4 cells (a, b), each 81 features
    out = out.reshape(clips, T, G, 2, G, 2, 81).transpose(0, 1, 2, 4, 3, 5, 6)
    return out.reshape(clips, T, G * G, 4 * 81)
