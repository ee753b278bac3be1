"""CLIP references from Hugging Face `transformers`, run in the cached virtual
environment (venv_cache.py) by tests/test_clip.py: one process (one import of
`transformers`, ~10 s) for every model of a test.

  python clip_ref.py JOBS.json
JOBS.json is a list of jobs {"dir": DIR, "spec": SPEC?, "in": IN.npz?, "out": OUT.npz?}:
  spec: a random-weight CLIPModel of SPEC's config ({"text": {...},
      "vision": {...}, "projection_dim": E, "seed": N}), its weights drawn far
      from the default initialisation (every tensor normal, LayerNorm gains
      about 1) so that every term matters (unless SPEC says "init":
      "default": transformers' own initialisation), saved into DIR with
      save_pretrained (config.json, model.safetensors; the tokenizer files
      are the caller's, written there before).
  in/out: IN.npz holds pixels float32 [n, 3, S, S] (may be empty) and texts
      (a unicode array); OUT.npz gets image_embeddings [n, E] and
      text_embeddings [t, E] from DIR's model in float64 (the projected
      pooled states: CLIPModel's image_embeds / text_embeds before their
      normalisation), token_ids int32 [t, 77] from DIR's CLIPTokenizer
      (padding="max_length", truncation=True), and the tokenizer's class.
      IN.npz may also hold frames uint8 [clips, T, h, w, 3]: OUT.npz then
      gets clip_embeddings [clips, E], the mean over each clip's frames of
      their unit image embeddings, the frames preprocessed by
      CLIPImageProcessorPil (PIL's bicubic, short side and crop = the
      model's image_size, OpenAI's mean/std).
"""
import json
import sys

import numpy as np
import torch


def make(out, spec):
    from transformers import CLIPConfig, CLIPModel

    cfg = CLIPConfig(text_config=spec["text"], vision_config=spec["vision"],
                     projection_dim=spec["projection_dim"])
    torch.manual_seed(spec["seed"])
    model = CLIPModel(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters() if spec.get("init") != "default" else []:
            gain = name.endswith(".weight") and ("norm" in name or "layrnorm" in name)
            p.copy_(torch.randn_like(p) * (0.1 if gain else 0.2) + (1.0 if gain else 0.0))
    model.save_pretrained(out, safe_serialization=True)


def ref(model_dir, in_path, out_path):
    from transformers import CLIPModel, CLIPTokenizer

    data = np.load(in_path)
    model = CLIPModel.from_pretrained(model_dir).double().eval()
    tok = CLIPTokenizer.from_pretrained(model_dir)
    out = {"tokenizer": np.array(type(tok).__name__)}
    with torch.no_grad():
        px = data["pixels"]
        if px.size:
            vis = model.vision_model(pixel_values=torch.from_numpy(px).double())
            out["image_embeddings"] = model.visual_projection(vis.pooler_output).numpy()
        texts = [str(t) for t in data["texts"]]
        if texts:
            enc = tok(texts, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
            txt = model.text_model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
            out["text_embeddings"] = model.text_projection(txt.pooler_output).numpy()
            out["token_ids"] = enc["input_ids"].numpy().astype(np.int32)
        if "frames" in data.files:
            from transformers import CLIPImageProcessorPil
            from PIL import Image

            fr = data["frames"]
            S = model.config.vision_config.image_size
            proc = CLIPImageProcessorPil(size={"shortest_edge": S}, crop_size={"height": S, "width": S})
            flat = [Image.fromarray(f) for f in fr.reshape((-1,) + fr.shape[2:])]
            px = torch.from_numpy(proc(images=flat, return_tensors="np")["pixel_values"]).double()
            emb = model.visual_projection(model.vision_model(pixel_values=px).pooler_output)
            emb = emb / emb.norm(dim=-1, keepdim=True)
            out["clip_embeddings"] = emb.reshape(fr.shape[0], fr.shape[1], -1).mean(dim=1).numpy()
    np.savez(out_path, **out)


if __name__ == "__main__":
    for job in json.load(open(sys.argv[1])):
        if "spec" in job:
            make(job["dir"], job["spec"])
        if "in" in job:
            ref(job["dir"], job["in"], job["out"])
