#!/usr/bin/env python3
"""Compare the engine's logits with Hugging Face transformers' GptOssForCausalLM (float32,
eager attention) loaded with the same weights as one of our model files.

What it does
  1. Reads the model file with tests/e2e/forward_ref.py's reader (imported, not duplicated):
     bf16 tensors and MXFP4 experts (scale 2^(stored - 14 - 127)) as float64.
  2. Undoes the converter's transforms (MODEL_FORMAT.md 5.4) to get checkpoint-convention
     tensors: Q/K rows back to "rotate halves" order (file row 2i = checkpoint row i, file
     row 2i+1 = checkpoint row i + D/2), the softmax-scale folding removed (Q / 0.5,
     K / 0.25 for D = 64; K / (2/sqrt(D)) otherwise, as offline/convert.c folds it), so that
     HF's own 1/sqrt(head_dim) applies; vocabulary stays at the file's V rows.
  3. Builds a GptOssConfig from the header (YaRN: factor = 1/interpolation_scale,
     low = -yarn_offset/yarn_scale, high = low + 1/yarn_scale, beta_fast/beta_slow solved
     from MODEL_FORMAT.md 3 with original_max_position_embeddings = context/factor,
     truncate False) and loads the tensors under HF's parameter names; HF's inv_freq and
     attention_scaling are checked against the header's RoPE before anything else.
  4. Runs tests/e2e/dump_logits (prompt, then greedy decode steps; logits of the last prompt
     token and of every generated token) and compares with HF's logits at the same
     positions: max|ours - hf| / max|hf| <= --tol (1e-3) at every position and the same
     argmax. Two runs: a 1-token prompt with --steps greedy steps (every position of the
     sequence, past the sliding window) and a ~20-token prompt through the chunked prefill.
  5. With a GPU: the engine's CUDA logits against its CPU logits (rel --cuda-tol, 1e-4).
  Also: HF against forward_ref's independent float64 forward pass (diagnoses a mapping
  error on the HF side vs. an engine error).

usage (GPU machine, torch + transformers 5.x):
  python3 tests/e2e/hf_compare.py --gptoss build/bin/gptoss --model /tmp/tiny.bin
  (no --model: makes one with `gptoss make-model --preset tiny --seed 1`)
  --ours-npy LOGITS.npy --tokens 1,2,3: compare a [T][V] float array of our logits for
      these tokens instead of running dump_logits.
  --reference numpy: use this file's numpy mirror of HF's modeling code instead of torch
      (runs anywhere; what --self-test uses).
  --self-test: no torch needed: round-trips the inverse transforms against the forward
      ones (bit-exact on the file bytes), checks the numpy mirror of HF's forward pass on
      the checkpoint-convention tensors against forward_ref's forward pass on the file
      tensors, and the HF-formula inv_freq against the header's.
The last lines are PASS/FAIL (or SKIP) per check, then the overall verdict.
exit 0 = pass, 1 = fail, 77 = skipped (numpy, or torch/transformers for --reference hf).
"""
import argparse
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

try:
    import numpy as np
except ImportError:
    print("SKIP: numpy is not installed")
    sys.exit(77)

import forward_ref  # noqa: E402  (the other e2e test's file reader and float64 forward pass)

# ---- inverse transforms: model file -> checkpoint convention --------------------------------


def qk_fold_scales(D):
    """(q_scale, k_scale) the converter folds into Q and K rows (offline/convert.c write_qkv)."""
    return 0.5, (0.25 if D == 64 else 2.0 / math.sqrt(D))


def unpermute_rows(w, heads, D):
    """File rows [heads*D, ...] in adjacent-pair order -> checkpoint 'halves' order:
    checkpoint row i = file row 2i, checkpoint row i + D/2 = file row 2i + 1."""
    x = w.reshape(heads, D // 2, 2, *w.shape[1:])
    return np.concatenate([x[:, :, 0], x[:, :, 1]], axis=1).reshape(w.shape)


def permute_rows(w, heads, D):
    """Checkpoint 'halves' order -> file order (new 2i = old i, new 2i+1 = old i + D/2)."""
    x = w.reshape(heads, 2, D // 2, *w.shape[1:])
    return np.stack([x[:, 0], x[:, 1]], axis=2).reshape(w.shape)


def checkpoint_tensors(m):
    """HF state dict (name -> float64 array, checkpoint convention) and HF config values for
    a forward_ref.Model."""
    c = m.cfg
    H, D, Hq, Hkv = c["embedding_dim"], c["head_dim"], c["num_heads"], c["num_kv_heads"]
    qs, ks = qk_fold_scales(D)
    sd = {"model.embed_tokens.weight": m.embedding, "model.norm.weight": m.final_norm,
          "lm_head.weight": m.unembedding}
    for n, lw in enumerate(m.layers):
        p = f"model.layers.{n}."
        qw, kw, vw = (lw["qkv_w"][:Hq * D], lw["qkv_w"][Hq * D:(Hq + Hkv) * D], lw["qkv_w"][(Hq + Hkv) * D:])
        qb, kb, vb = (lw["qkv_b"][:Hq * D], lw["qkv_b"][Hq * D:(Hq + Hkv) * D], lw["qkv_b"][(Hq + Hkv) * D:])
        sd[p + "input_layernorm.weight"] = lw["attn_norm"]
        sd[p + "self_attn.q_proj.weight"] = unpermute_rows(qw, Hq, D) / qs
        sd[p + "self_attn.q_proj.bias"] = unpermute_rows(qb, Hq, D) / qs
        sd[p + "self_attn.k_proj.weight"] = unpermute_rows(kw, Hkv, D) / ks
        sd[p + "self_attn.k_proj.bias"] = unpermute_rows(kb, Hkv, D) / ks
        sd[p + "self_attn.v_proj.weight"] = vw
        sd[p + "self_attn.v_proj.bias"] = vb
        sd[p + "self_attn.o_proj.weight"] = lw["out_w"]            # [H][Hq*D]
        sd[p + "self_attn.o_proj.bias"] = lw["out_b"]
        sd[p + "self_attn.sinks"] = lw["sinks"]                     # [Hq], not scaled
        sd[p + "post_attention_layernorm.weight"] = lw["mlp_norm"]
        sd[p + "mlp.router.weight"] = lw["gate_w"]                  # [E][H]
        sd[p + "mlp.router.bias"] = lw["gate_b"]
        # mlp1 [E][2I][H] (row 2j = glu, 2j+1 = linear) -> gate_up_proj [E][H][2I]: column 2j
        # is HF's `gate` (gate_up[..., ::2]), 2j+1 its `up` (gate_up[..., 1::2]).
        sd[p + "mlp.experts.gate_up_proj"] = np.ascontiguousarray(lw["w1"].transpose(0, 2, 1))
        sd[p + "mlp.experts.gate_up_proj_bias"] = lw["b1"]         # [E][2I]
        sd[p + "mlp.experts.down_proj"] = np.ascontiguousarray(lw["w2"].transpose(0, 2, 1))  # [E][I][H]
        sd[p + "mlp.experts.down_proj_bias"] = lw["b2"]            # [E][H]
    return sd


def yarn_parameters(c):
    """HF rope parameters reproducing the header's YaRN (MODEL_FORMAT.md 3):
    low = (D/2) ln(L0 / (beta_fast 2 pi)) / ln(theta), high = same with beta_slow,
    with L0 = original_max_position_embeddings; only L0/beta matters, so L0 is chosen as
    context_length / factor (4096 for the released files) and the betas solved for."""
    D = c["head_dim"]
    theta = float(c["rope_theta"])
    factor = 1.0 / float(c["interpolation_scale"])
    low = -float(c["yarn_offset"]) / float(c["yarn_scale"])
    high = low + 1.0 / float(c["yarn_scale"])
    l0 = c["context_length"] / factor
    if l0 < 1.0:
        l0 = 4096.0
    l0 = float(round(l0)) if abs(l0 - round(l0)) < 1e-6 else l0

    def beta(x):
        return l0 / (2.0 * math.pi) * math.exp(-x * math.log(theta) / (D / 2.0))

    return {"rope_type": "yarn", "rope_theta": theta, "factor": factor, "beta_fast": beta(low),
            "beta_slow": beta(high), "truncate": False, "original_max_position_embeddings": int(l0)
            if float(l0).is_integer() else l0}, low, high


def engine_inv_freq(c):
    """Our RoPE frequencies (KERNELS.md 7 / forward_ref.rope_tables), float64."""
    D = c["head_dim"]
    i = np.arange(D // 2, dtype=np.float64)
    e = np.float64(c["rope_theta"]) ** (-i / (D // 2))
    alpha = np.clip(i * np.float64(c["yarn_scale"]) + np.float64(c["yarn_offset"]), 0.0, 1.0)
    return e + (e * np.float64(c["interpolation_scale"]) - e) * alpha


def hf_formula_inv_freq(rp, D):
    """YaRN inv_freq and attention factor as transformers' yarn RoPE init computes them
    (written from its formulas, float64): correction range from beta_fast/beta_slow, clamped
    to [0, D-1], floor/ceil only with truncate, linear ramp over D/2 frequencies."""
    base, factor, l0 = rp["rope_theta"], rp["factor"], rp["original_max_position_embeddings"]

    def corr_dim(rot):
        return D * math.log(l0 / (rot * 2 * math.pi)) / (2 * math.log(base))

    lo, hi = corr_dim(rp["beta_fast"]), corr_dim(rp["beta_slow"])
    if rp.get("truncate", True):
        lo, hi = math.floor(lo), math.ceil(hi)
    lo, hi = max(lo, 0), min(hi, D - 1)
    if lo == hi:
        hi += 0.001
    ramp = np.clip((np.arange(D // 2, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0)
    pos = base ** (np.arange(0, D, 2, dtype=np.float64) / D)
    extra, inter = 1.0 / pos, 1.0 / (factor * pos)
    inv = inter * ramp + extra * (1.0 - ramp)
    att = 0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0
    return inv, att


def hf_config_values(m):
    c = m.cfg
    rp, low, high = yarn_parameters(c)
    L = c["num_blocks"]
    return dict(
        vocab_size=m.V, hidden_size=c["embedding_dim"], intermediate_size=c["mlp_dim"], num_hidden_layers=L,
        num_attention_heads=c["num_heads"], num_key_value_heads=c["num_kv_heads"], head_dim=c["head_dim"],
        num_local_experts=c["num_experts"], num_experts_per_tok=c["num_active_experts"],
        sliding_window=c["attention_window"], max_position_embeddings=c["context_length"],
        rms_norm_eps=float(c["rmsnorm_epsilon"]), tie_word_embeddings=False, attention_dropout=0.0,
        layer_types=["sliding_attention" if n % 2 == 0 else "full_attention" for n in range(L)],
    ), rp


# ---- numpy mirror of HF's GptOss forward (checkpoint convention, HF layouts) -----------------


def mirror_forward(sd, hc, rp, limit, tokens):
    """float64 forward over the state dict, structured like transformers' modeling_gpt_oss:
    rotate-halves RoPE with YaRN cos/sin * attention factor, scores * head_dim^-0.5, causal
    (+ sliding: kv > q - window) mask, sink column appended to the softmax then dropped,
    router top-k then softmax, gate_up = x @ gate_up_proj[e] + b, gate = [::2] (clamp max),
    up = [1::2] (clamp +-limit), (up + 1) * gate * sigmoid(1.702 gate), @ down_proj[e] + b."""
    D, Hq, Hkv = hc["head_dim"], hc["num_attention_heads"], hc["num_key_value_heads"]
    K, eps = hc["num_experts_per_tok"], hc["rms_norm_eps"]
    T = len(tokens)
    inv, att = hf_formula_inv_freq(rp, D)
    ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]
    cos, sin = np.cos(ang) * att, np.sin(ang) * att                # [T][D/2]

    def norm(x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w

    def rot(x):  # x [T][heads][D]
        a, b = x[..., :D // 2], x[..., D // 2:]
        cs, sn = cos[:, None], sin[:, None]
        return np.concatenate([a * cs - b * sn, b * cs + a * sn], axis=-1)

    x = sd["model.embed_tokens.weight"][np.asarray(tokens)]
    pos = np.arange(T)
    for n in range(hc["num_hidden_layers"]):
        p = f"model.layers.{n}."
        t = norm(x, sd[p + "input_layernorm.weight"])
        q = (t @ sd[p + "self_attn.q_proj.weight"].T + sd[p + "self_attn.q_proj.bias"]).reshape(T, Hq, D)
        k = (t @ sd[p + "self_attn.k_proj.weight"].T + sd[p + "self_attn.k_proj.bias"]).reshape(T, Hkv, D)
        v = (t @ sd[p + "self_attn.v_proj.weight"].T + sd[p + "self_attn.v_proj.bias"]).reshape(T, Hkv, D)
        q, k = rot(q), rot(k)
        k, v = np.repeat(k, Hq // Hkv, axis=1), np.repeat(v, Hq // Hkv, axis=1)
        s = np.einsum("qhd,khd->hqk", q, k) * D ** -0.5
        ok = pos[None, :] <= pos[:, None]
        if hc["layer_types"][n] == "sliding_attention":
            ok &= pos[None, :] > pos[:, None] - hc["sliding_window"]
        s = np.where(ok[None], s, -np.inf)
        sinks = np.broadcast_to(sd[p + "self_attn.sinks"][:, None, None], (Hq, T, 1))
        comb = np.concatenate([s, sinks], axis=-1)
        comb = np.exp(comb - comb.max(axis=-1, keepdims=True))
        probs = (comb / comb.sum(axis=-1, keepdims=True))[..., :-1]
        a = np.einsum("hqk,khd->qhd", probs, v).reshape(T, Hq * D)
        x = x + a @ sd[p + "self_attn.o_proj.weight"].T + sd[p + "self_attn.o_proj.bias"]

        t = norm(x, sd[p + "post_attention_layernorm.weight"])
        logits = t @ sd[p + "mlp.router.weight"].T + sd[p + "mlp.router.bias"]
        idx = np.argsort(-logits, axis=1, kind="stable")[:, :K]
        top = np.take_along_axis(logits, idx, axis=1)
        wts = np.exp(top - top.max(axis=1, keepdims=True))
        wts /= wts.sum(axis=1, keepdims=True)
        gu_w, gu_b = sd[p + "mlp.experts.gate_up_proj"], sd[p + "mlp.experts.gate_up_proj_bias"]
        dn_w, dn_b = sd[p + "mlp.experts.down_proj"], sd[p + "mlp.experts.down_proj_bias"]
        y = np.zeros_like(x)
        for tok in range(T):
            for j in range(K):
                e = idx[tok, j]
                gu = t[tok] @ gu_w[e] + gu_b[e]
                gate = np.minimum(gu[0::2], limit)
                up = np.clip(gu[1::2], -limit, limit)
                h = (up + 1.0) * gate / (1.0 + np.exp(-1.702 * gate))
                y[tok] += wts[tok, j] * (h @ dn_w[e] + dn_b[e])
        x = x + y
    x = norm(x, sd["model.norm.weight"])
    return x @ sd["lm_head.weight"].T


# ---- transformers side ----------------------------------------------------------------------


class HFModel:
    """GptOssForCausalLM in float32 with the file's weights; .forward(tokens) -> float64 logits."""

    def __init__(self, m, sd, device):
        import torch
        import transformers
        from transformers import GptOssConfig, GptOssForCausalLM

        self.torch = torch
        self.device = device
        self.notes = []
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
        hc, rp = hf_config_values(m)
        major = int(transformers.__version__.split(".")[0])
        if major >= 5:
            config = GptOssConfig(**hc, rope_parameters=dict(rp))
        else:  # 4.x: rope_theta outside the rope dict, named rope_scaling
            r = {k: v for k, v in rp.items() if k != "rope_theta"}
            config = GptOssConfig(**hc, rope_theta=rp["rope_theta"], rope_scaling=r)
        model = None
        for kw in ({"dtype": torch.float32}, {"torch_dtype": torch.float32}):  # 5.x spelling, then 4.x
            try:
                model = GptOssForCausalLM._from_config(config, attn_implementation="eager", **kw)
                break
            except TypeError as exc:
                self.notes.append(f"_from_config({list(kw)[0]}=...): {exc}")
        if model is None:
            config._attn_implementation = "eager"
            model = GptOssForCausalLM(config)
        for what, setter in (("attention", "set_attn_implementation"), ("experts", "set_experts_implementation")):
            if hasattr(model, setter):
                try:
                    getattr(model, setter)("eager")
                except Exception as exc:  # noqa: BLE001  (report, keep going)
                    self.notes.append(f"{setter}('eager') failed: {exc}")
        if getattr(model.config, "_experts_implementation", "eager") not in (None, "eager"):
            try:
                model.config._experts_implementation = "eager"
            except Exception as exc:  # noqa: BLE001
                self.notes.append(f"cannot force eager experts: {exc}")
        model = model.to(dtype=torch.float32).eval()
        limit = float(m.cfg["swiglu_limit"])
        for layer in model.model.layers:  # HF hard-codes limit 7.0 and alpha 1.702
            layer.mlp.experts.limit = limit
        # load the tensors: names and shapes must match exactly
        want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        missing = sorted(set(want) - set(sd))
        unexpected = sorted(set(sd) - set(want))
        badshape = sorted(k for k in set(want) & set(sd) if tuple(sd[k].shape) != want[k])
        self.load_ok = not (missing or unexpected or badshape)
        for label, keys in (("missing", missing), ("unexpected", unexpected)):
            if keys:
                self.notes.append(f"{len(keys)} {label} keys, e.g. {keys[:4]}")
        for k in badshape[:4]:
            self.notes.append(f"shape of {k}: HF {want[k]}, ours {tuple(sd[k].shape)}")
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in sd.items()
                   if k in want and tuple(v.shape) == want[k]}
        if self.load_ok:
            try:
                model.load_state_dict(tensors, strict=True)
            except Exception as exc:  # noqa: BLE001
                self.load_ok = False
                self.notes.append(f"load_state_dict: {exc}")
        self.model = model.to(device)
        self.versions = f"transformers {transformers.__version__}, torch {torch.__version__}"
        self.attn_impl = getattr(model.config, "_attn_implementation", "?")
        self.experts_impl = getattr(model.config, "_experts_implementation", "n/a")

        # RoPE: HF's inv_freq / attention_scaling against the header
        rot = getattr(model.model, "rotary_emb", None)
        ours = engine_inv_freq(m.cfg)
        self.rope_ok = False
        if rot is None or not hasattr(rot, "inv_freq"):
            self.rope_msg = "model.model.rotary_emb.inv_freq not found"
        else:
            hf_inv = rot.inv_freq.detach().double().cpu().numpy()
            att = float(getattr(rot, "attention_scaling", float("nan")))
            err = float(np.max(np.abs(hf_inv - ours) / ours)) if hf_inv.shape == ours.shape else float("inf")
            aerr = abs(att - float(m.cfg["yarn_multiplier"])) / float(m.cfg["yarn_multiplier"])
            self.rope_ok = err <= 1e-5 and aerr <= 1e-6
            self.rope_msg = (f"inv_freq max rel diff {err:.2e}, attention_scaling {att:.7f} vs yarn_multiplier "
                             f"{float(m.cfg['yarn_multiplier']):.7f}")
            if not self.rope_ok and hf_inv.shape == ours.shape:
                # keep the logits comparison meaningful: use the header's RoPE, report the config problem
                with torch.no_grad():
                    rot.inv_freq.copy_(torch.tensor(ours, dtype=rot.inv_freq.dtype))
                if hasattr(rot, "original_inv_freq"):
                    rot.original_inv_freq = rot.inv_freq
                rot.attention_scaling = float(m.cfg["yarn_multiplier"])
                self.rope_msg += " (overridden with the header's values for the logits comparison)"

    def forward(self, tokens):
        torch = self.torch
        ids = torch.tensor([list(tokens)], dtype=torch.long, device=self.device)
        with torch.no_grad():
            out = self.model(input_ids=ids, use_cache=False)
        return out.logits[0].double().cpu().numpy()


class MirrorModel:
    """--reference numpy: the numpy mirror above in place of transformers."""

    def __init__(self, m, sd):
        self.sd = sd
        self.hc, self.rp = hf_config_values(m)
        self.limit = float(m.cfg["swiglu_limit"])
        self.notes, self.load_ok = [], True
        self.versions = f"numpy {np.__version__} mirror of modeling_gpt_oss"
        self.attn_impl, self.experts_impl = "eager (numpy)", "eager (numpy)"
        inv, att = hf_formula_inv_freq(self.rp, m.cfg["head_dim"])
        ours = engine_inv_freq(m.cfg)
        err = float(np.max(np.abs(inv - ours) / ours))
        self.rope_ok = err <= 1e-5 and abs(att - float(m.cfg["yarn_multiplier"])) <= 1e-6 * att
        self.rope_msg = f"inv_freq (HF formula) max rel diff {err:.2e}, attention factor {att:.7f}"

    def forward(self, tokens):
        return mirror_forward(self.sd, self.hc, self.rp, self.limit, tokens)


# ---- engine runs and comparisons --------------------------------------------------------------


def run_dump(dump, model_path, out, prompt, steps, backend, extra):
    cmd = [dump, model_path, out, "--prompt", prompt, "--steps", str(steps), "--backend", backend] + extra
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        return None, f"{' '.join(cmd)} exited {r.returncode}: {r.stdout.strip()[-400:]}"
    V, prompt_ids, steps, extra_n, logits, tokens = forward_ref.read_dump(out)
    return (prompt_ids, logits[:steps + 1], tokens[:steps]), None


def compare(label, ours, ref, tol, sampled=None):
    """ours/ref [P][V] at the same positions. Per position rel = max|ours - ref| / max|ref|;
    the argmax must agree unless the reference's top-2 margin is below the measured error
    (reported as a near tie). sampled: the engine's greedy tokens (must be its own argmax)."""
    ok = True
    worst, same, msgs = 0.0, 0, []
    for i in range(len(ref)):
        scale = float(np.max(np.abs(ref[i])))
        diff = float(np.max(np.abs(ours[i] - ref[i])))
        rel = diff / scale if scale > 0 else float("inf")
        worst = max(worst, rel)
        if not np.all(np.isfinite(ours[i])) or not rel <= tol:
            ok = False
            msgs.append(f"pos {i}: rel error {rel:.3e} > {tol:g}")
        a, b = int(np.argmax(ours[i])), int(np.argmax(ref[i]))
        if sampled is not None and i < len(sampled) and sampled[i] != a:
            ok = False
            msgs.append(f"pos {i}: engine sampled {sampled[i]} but its argmax is {a}")
        if a == b:
            same += 1
        else:
            top2 = np.sort(ref[i])[-2:]
            margin = float(top2[1] - top2[0])
            if margin > 2 * diff:
                ok = False
                msgs.append(f"pos {i}: argmax {a} != reference {b} (margin {margin / scale:.2e})")
            else:
                msgs.append(f"pos {i}: near tie, argmax {a} vs reference {b} (margin {margin / scale:.2e})")
    for s in msgs[:8]:
        print(f"  {label}: {s}")
    summary = (f"{label}: {len(ref)} positions, max rel error {worst:.2e} (tol {tol:g}), "
               f"argmax identical {same}/{len(ref)}")
    return ok, summary


def gpu_present():
    try:
        import torch
        if torch.cuda.is_available():
            return True
    except ImportError:
        pass
    return shutil.which("nvidia-smi") is not None


# ---- self-test (no torch) ---------------------------------------------------------------------


def bf16_round(x):
    """float64 -> nearest-even bf16 value (as float64), via float32."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32).astype(np.float64)


def encode_mxfp4(w, scales_stored):
    """Re-encode dequantised weights [rows][cols] with the file's stored scales (+14 biased):
    returns the packed bytes [rows][cols/32][16], or None if a value is not representable."""
    rows, cols = w.shape
    mult = np.ldexp(1.0, scales_stored.astype(np.int64) - 14 - 127)
    v = w.reshape(rows, cols // 32, 32) / mult[:, :, None]
    codes = np.full(v.shape, 255, dtype=np.int64)
    for code, val in enumerate(forward_ref.FP4):
        hit = (v == val) & (np.signbit(v) == np.signbit(val))
        codes[hit] = code
    if np.any(codes == 255):
        return None
    return (codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8)


def expert_raw(path, m):
    """(mlp1 scales, mlp1 blocks, mlp2 scales, mlp2 blocks) raw bytes per layer and expert,
    located from the header as MODEL_FORMAT.md 1 and 5 describe."""
    c = m.cfg
    H, I, E, L, V = c["embedding_dim"], c["mlp_dim"], c["num_experts"], c["num_blocks"], m.V
    D, Hq, Hkv = c["head_dim"], c["num_heads"], c["num_kv_heads"]
    r16, up = forward_ref.r16, forward_ref.roundup
    with open(path, "rb") as f:
        data = f.read()
    ns, nt, rs, ts = struct.unpack_from("<4I", data, 132)
    w0 = up(148 + 16 * ns + rs + ts, forward_ref.PAGE)
    per_block = sum(r16(2 * n) for n in (H, (Hq + 2 * Hkv) * D * H, (Hq + 2 * Hkv) * D, Hq, H * Hq * D, H, H, E * H, E))
    shared = up(r16(V * H * 2) * 2 + L * per_block + r16(H * 2), forward_ref.PAGE)
    sizes = [2 * I * H // 2, 2 * I * H // 32, 2 * I * 2, H * I // 2, H * I // 32, H * 2]
    per_expert = sum(r16(s) for s in sizes)
    moe = up(E * per_expert, forward_ref.PAGE)
    out = {}
    for n in range(L):
        for e in range(E):
            o = w0 + shared + n * moe + e * per_expert
            parts = []
            for s in sizes:
                parts.append(np.frombuffer(data, dtype=np.uint8, count=s, offset=o))
                o += r16(s)
            out[n, e] = (parts[1].reshape(2 * I, H // 32), parts[0].reshape(2 * I, H // 32, 16),
                         parts[4].reshape(H, I // 32), parts[3].reshape(H, I // 32, 16))
    return out


def self_test(path, m, sd, tokens):
    c = m.cfg
    D, Hq, Hkv = c["head_dim"], c["num_heads"], c["num_kv_heads"]
    qs, ks = qk_fold_scales(D)
    results = []
    # 1. forward transforms (MODEL_FORMAT.md 5.4, bf16 arithmetic) of the recovered checkpoint
    #    tensors reproduce the file's QKV bit for bit
    ok = True
    for n, lw in enumerate(m.layers):
        p = f"model.layers.{n}.self_attn."
        for kind, heads, scale, lo, hi in (("q", Hq, qs, 0, Hq * D), ("k", Hkv, ks, Hq * D, (Hq + Hkv) * D),
                                           ("v", Hkv, None, (Hq + Hkv) * D, (Hq + 2 * Hkv) * D)):
            for suffix, fileval in (("weight", lw["qkv_w"][lo:hi]), ("bias", lw["qkv_b"][lo:hi])):
                ck = sd[f"{p}{kind}_proj.{suffix}"]
                fwd = ck if scale is None else bf16_round(permute_rows(ck, heads, D) * scale)
                if not np.array_equal(fwd, fileval):
                    ok = False
                    print(f"  round trip: layer {n} {kind}_proj.{suffix} differs")
    results.append((ok, "qkv inverse transforms: un-permute + un-fold, then the converter's permute + "
                        f"bf16 fold (Q*{qs:g}, K*{ks:g}) reproduce the file bit for bit"))
    # 2. HF expert tensors re-encode to the file's MXFP4 bytes with the stored (+14) scales
    raw = expert_raw(path, m)
    ok = True
    for (n, e), (s1, b1, s2, b2) in raw.items():
        p = f"model.layers.{n}.mlp.experts."
        w1 = sd[p + "gate_up_proj"][e].T   # [2I][H]
        w2 = sd[p + "down_proj"][e].T      # [H][I]
        for name, w, s, b in (("gate_up_proj", w1, s1, b1), ("down_proj", w2, s2, b2)):
            enc = encode_mxfp4(w, s)
            if enc is None or not np.array_equal(enc, b):
                ok = False
                print(f"  mxfp4 round trip: layer {n} expert {e} {name} differs")
    results.append((ok, f"expert tensors ({len(raw)} layer-experts) re-encode to the file's MXFP4 bytes"))
    # 3. RoPE: HF's YaRN formula with the derived parameters equals the header's frequencies
    hc, rp = hf_config_values(m)
    inv, att = hf_formula_inv_freq(rp, D)
    ours = engine_inv_freq(c)
    err = float(np.max(np.abs(inv - ours) / ours))
    aerr = abs(att - float(c["yarn_multiplier"]))
    results.append((err <= 1e-5 and aerr <= 1e-6,
                    f"YaRN {rp['factor']:g}x, beta_fast {rp['beta_fast']:.6g}, beta_slow {rp['beta_slow']:.6g}, "
                    f"L0 {rp['original_max_position_embeddings']}: inv_freq max rel diff {err:.2e}, "
                    f"attention factor diff {aerr:.1e}"))
    # 4. the numpy mirror of HF's forward on checkpoint tensors == forward_ref on file tensors
    a = mirror_forward(sd, hc, rp, float(c["swiglu_limit"]), tokens)
    b = m.forward(tokens)
    rel = float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
    same = int(np.sum(np.argmax(a, axis=1) == np.argmax(b, axis=1)))
    results.append((rel <= 1e-6 and same == len(tokens),
                    f"HF-layout numpy mirror vs forward_ref over {len(tokens)} positions: max rel diff {rel:.2e}, "
                    f"argmax identical {same}/{len(tokens)} (float64; the header's f32 yarn_multiplier vs "
                    f"HF's float64 0.1 ln(factor) + 1 accounts for ~1e-9)"))
    return results


# ---- main ---------------------------------------------------------------------------------------

LONG_PROMPT = "The gpt-oss models alternate banded and dense attention layers; test 12345."


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gptoss", help="the gptoss CLI (make-model; also locates dump_logits)")
    ap.add_argument("--dump", help="tests/e2e/dump_logits (default: <build>/tests/e2e/dump_logits next to --gptoss)")
    ap.add_argument("--model", help="model file (default: make a tiny one)")
    ap.add_argument("--seed", default="1", help="make-model seed when --model is not given")
    ap.add_argument("--workdir", help="scratch directory (default: a temporary one)")
    ap.add_argument("--steps", type=int, default=24, help="greedy steps after the 1-token prompt")
    ap.add_argument("--tol", type=float, default=1e-3, help="engine vs HF, rel to max|logit|")
    ap.add_argument("--cuda-tol", type=float, default=1e-4, help="CUDA vs CPU engine, rel to max|logit|")
    ap.add_argument("--cuda", choices=["auto", "on", "off"], default="auto")
    ap.add_argument("--reference", choices=["hf", "numpy"], default="hf")
    ap.add_argument("--hf-device", default="cpu", help="torch device for the HF model (cpu: no TF32 anywhere)")
    ap.add_argument("--ours-npy", help="our logits [T][V] (float) for --tokens, instead of dump_logits")
    ap.add_argument("--tokens", help="comma-separated token ids for --ours-npy")
    ap.add_argument("--no-numpy-ref", action="store_true", help="skip HF vs forward_ref's float64 forward")
    ap.add_argument("--self-test", action="store_true", help="checks that need neither torch nor the engine run")
    args = ap.parse_args()

    workdir = args.workdir
    if workdir is None:
        workdir = tempfile.mkdtemp(prefix="hf_compare-")
        import atexit
        atexit.register(shutil.rmtree, workdir, True)
    os.makedirs(workdir, exist_ok=True)
    model_path = args.model
    if model_path is None:
        if not args.gptoss:
            ap.error("--model or --gptoss (to make a tiny model) is required")
        model_path = os.path.join(workdir, f"tiny-{args.seed}.bin")
        subprocess.run([args.gptoss, "make-model", "--preset", "tiny", "--seed", args.seed, "--quiet", "--force",
                        model_path],
                       check=True)
    dump = args.dump
    if dump is None and args.gptoss:
        build = os.path.dirname(os.path.dirname(os.path.abspath(args.gptoss)))
        dump = os.path.join(build, "tests", "e2e", "dump_logits")

    m = forward_ref.Model(model_path)
    c = m.cfg
    sd = checkpoint_tensors(m)
    print(f"[hf_compare] {model_path}: L={c['num_blocks']} E={c['num_experts']}/{c['num_active_experts']} "
          f"H={c['embedding_dim']} I={c['mlp_dim']} heads {c['num_heads']}/{c['num_kv_heads']}x{c['head_dim']} "
          f"window {c['attention_window']} V={m.V} swiglu_limit {c['swiglu_limit']:g}")
    results = []  # (status "PASS"/"FAIL"/"SKIP", text)

    def add(ok, text):
        results.append(("PASS" if ok else "FAIL", text))

    if args.self_test:
        rng = np.random.default_rng(int(args.seed))
        tokens = [int(t) for t in rng.integers(0, m.V, size=max(2 * c["attention_window"] + 3, 20))]
        for ok, text in self_test(model_path, m, sd, tokens):
            add(ok, "self-test " + text)
    else:
        # the reference
        if args.reference == "hf":
            try:
                import torch  # noqa: F401
                import transformers  # noqa: F401
            except ImportError as exc:
                print(f"SKIP: {exc} (use --reference numpy or --self-test without torch)")
                return 77
            ref = HFModel(m, sd, args.hf_device)
        else:
            ref = MirrorModel(m, sd)
        print(f"[hf_compare] reference: {ref.versions}; attention {ref.attn_impl}, experts {ref.experts_impl}")
        for note in ref.notes:
            print(f"  note: {note}")
        add(ref.load_ok, "reference weights: every HF parameter loaded by name with the expected shape")
        add(ref.rope_ok, f"reference RoPE vs header: {ref.rope_msg}")
        numpy_ref = None if args.no_numpy_ref else m
        if not ref.load_ok:
            print()
            for status, text in results:
                print(f"{status} {text}")
            print("FAIL")
            return 1

        runs = []  # (label, tokens, our logits at positions [first, first+P), first, sampled tokens)
        if args.ours_npy:
            if not args.tokens:
                ap.error("--ours-npy needs --tokens")
            toks = [int(t) for t in args.tokens.split(",")]
            ours = np.load(args.ours_npy).astype(np.float64)
            assert ours.shape == (len(toks), m.V), f"{args.ours_npy}: shape {ours.shape} != ({len(toks)}, {m.V})"
            runs.append(("npy", toks, ours, 0, None))
        else:
            if dump is None or not os.path.exists(dump):
                print(f"FAIL: dump_logits not found ({dump}); give --dump or --ours-npy")
                return 1
            # the chunk prompt: ~100 tokens in one prefill call, where CUDA runs its tensor-core
            # paths (the GEMMs from 32 tokens on, the prefill attention for calls of 32 rows)
            specs = [("short-prompt", "The", args.steps, ["--batch", "16", "--mode", "process"]),
                     ("long-prompt", LONG_PROMPT, 4, ["--batch", "7", "--mode", "direct"]),
                     ("chunk-prompt", " ".join([LONG_PROMPT] * 6), 3, ["--batch", "256", "--mode", "direct"])]
            want_cuda = args.cuda == "on" or (args.cuda == "auto" and gpu_present())
            for label, prompt, steps, extra in specs:
                got, err = run_dump(dump, model_path, os.path.join(workdir, f"{label}-cpu.bin"), prompt, steps,
                                    "cpu", extra)
                if got is None:
                    add(False, f"engine cpu run {label}: {err}")
                    continue
                prompt_ids, logits, sampled = got
                toks = prompt_ids + sampled
                runs.append((f"{label} (cpu)", toks, logits, len(prompt_ids) - 1, sampled))
                if not want_cuda:
                    continue
                gotc, err = run_dump(dump, model_path, os.path.join(workdir, f"{label}-cuda.bin"), prompt, steps,
                                     "cuda", extra)
                if gotc is None:
                    results.append(("FAIL" if args.cuda == "on" else "SKIP", f"cuda-vs-cpu {label}: {err}"))
                    continue
                _, logits_c, sampled_c = gotc
                ok, text = compare(f"cuda-vs-cpu {label}", logits_c, logits, args.cuda_tol, sampled_c)
                if sampled_c != sampled:
                    print(f"  cuda-vs-cpu {label}: greedy tokens differ: {sampled_c} vs {sampled}")
                    ok = False
                add(ok, text)
                # CUDA logits against the reference too
                runs.append((f"{label} (cuda)", prompt_ids + sampled_c, logits_c, len(prompt_ids) - 1, sampled_c))
            if not want_cuda:
                results.append(("SKIP", "cuda-vs-cpu: no GPU (or --cuda off)"))

        cache = {}
        for label, toks, ours, first, sampled in runs:
            key = tuple(toks)
            if key not in cache:
                cache[key] = ref.forward(toks)
                if numpy_ref is not None:
                    ok, text = compare(f"{args.reference}-vs-forward_ref [{len(toks)} tokens]",
                                       cache[key], numpy_ref.forward(toks), 1e-4)
                    add(ok, text)
            ref_logits = cache[key][first:first + len(ours)]
            ok, text = compare(f"engine-vs-{args.reference} {label}", ours, ref_logits, args.tol, sampled)
            add(ok, text)

    print()
    for status, text in results:
        print(f"{status} {text}")
    failed = any(s == "FAIL" for s, _ in results)
    print("FAIL" if failed else "PASS")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
