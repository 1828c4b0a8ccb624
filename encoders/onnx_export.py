"""Export a sentence-transformers model folder to ONNX, optionally dynamically quantised to int8.

This is the one place that imports torch for the ONNX backends, and it runs in a process of its own
(`python -m encoders.onnx_export`, started by `encoders.onnx_backend.ensure_exported` or by `snapdex model export`
at set-up): the serving process then loads the exported file with onnxruntime and the `tokenizers` fast tokenizer,
and never imports torch.

What is written to the output folder (atomically: a temporary folder renamed into place):
- `model.onnx`: inputs input_ids, attention_mask, token_type_ids (int64, batch x sequence), output
  token_embeddings (float32, batch x sequence x dim): the transformer's last hidden state. Pooling stays outside
  the graph, so late windows pool the same token embeddings the text's own vector is made of.
- `tokenizer.json`: the model's fast tokenizer.
- `export.json`: what was exported and how, and how far its output is from the torch model on sample texts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

# Bump when this file changes what it writes: the export folder and the model id both carry it.
EXPORT_VERSION = 2
OPSET = 17

# Dynamic quantisation configs (weights int8 ahead of time, activations quantised per call). Named after the CPU
# features they target, as optimum's AutoQuantizationConfig names them: "vnni" is its avx512_vnni config (u8
# activations, s8 symmetric weights), "avx2" its avx2 config (u8 activations, u8 weights). "-pc": one scale per
# output channel instead of one per tensor. Which one serves is chosen by measurement (README, "Embedder backends").
QUANTIZATIONS: dict[str, dict | None] = {
    "none": None,
    "vnni": {"weight_type": "QInt8", "per_channel": False, "reduce_range": False},
    "vnni-pc": {"weight_type": "QInt8", "per_channel": True, "reduce_range": False},
    "avx2": {"weight_type": "QUInt8", "per_channel": False, "reduce_range": False},
    "avx2-pc": {"weight_type": "QUInt8", "per_channel": True, "reduce_range": False},
}
# Operators quantised: the transformer's matrix products, and the fused attention (its QKV projection). The
# word-embedding table (EmbedLayerNormalization's Gather) stays fp32: it is a lookup, not compute, so quantising it
# saves disk, not time.
QUANTIZED_OPS = ("MatMul", "Attention")
# onnxruntime's BERT graph fusions (onnxruntime.transformers.optimizer): one Attention node per layer instead of
# ~20 small ones, plus EmbedLayerNormalization, SkipLayerNormalization and BiasGelu. Measured on 768 SciFact chunks,
# int8: 8.8 s fused against 9.9 s unfused (README, "Embedder backends").
FUSION = "onnxruntime-bert"

SAMPLE_TEXTS = (
    "Vitamin D deficiency is common in winter.",
    "Aspirin reduces the risk of heart attack in adults over fifty, a large randomised trial found.",
    "The train leaves at noon.",
    "",
    " ".join(f"Sentence {i} of a long abstract adds words about cells, genes and proteins." for i in range(30)),
)


def export_config(quantization: str) -> dict:
    """Everything about an export that changes its output, hashed into its folder name and the model id."""
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization={quantization!r} is not one of {sorted(QUANTIZATIONS)}")
    q = QUANTIZATIONS[quantization]
    return {"version": EXPORT_VERSION, "opset": OPSET, "exporter": "torch.onnx torchscript, eager attention",
            "fusion": FUSION, "quantization": quantization, **({"quantize": {**q, "ops": list(QUANTIZED_OPS)}} if q else {})}


def config_key(quantization: str) -> str:
    return hashlib.sha256(json.dumps(export_config(quantization), sort_keys=True).encode()).hexdigest()[:10]


def sentence_config(folder: Path) -> dict:
    """What the serving side needs from a sentence-transformers folder, read without importing it."""
    def read(name: str) -> dict:
        f = folder / name
        return json.loads(f.read_text()) if f.exists() else {}

    model = read("config.json")
    pooling = read("1_Pooling/config.json")
    if pooling and not pooling.get("pooling_mode_mean_tokens"):
        modes = sorted(k for k, v in pooling.items() if k.startswith("pooling_mode") and v)
        raise ValueError(f"model {folder}: the ONNX backends support mean pooling only, it uses {modes}")
    dim = int(pooling.get("word_embedding_dimension") or model.get("hidden_size") or 0)
    if not dim:
        raise ValueError(f"model {folder}: no hidden_size in config.json")
    max_len = read("sentence_bert_config.json").get("max_seq_length") or model.get("max_position_embeddings") or 512
    return {"dim": dim, "max_seq_length": int(max_len)}


def export(folder: Path, out: Path, quantization: str) -> dict:
    """Export (and quantise) `folder` into `out`; returns what export.json says."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer

    config = export_config(quantization)
    started = time.perf_counter()
    # Eager attention: the SDPA path exports with a NaN guard (IsNaN + Where on every attention matrix) that took
    # a fifth of int8 inference time; the eager graph gives the same outputs (max token difference ~4e-5).
    model = AutoModel.from_pretrained(str(folder), attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"model {folder} has no fast tokenizer: the ONNX backends need tokenizer.json")

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    names = ("input_ids", "attention_mask", "token_type_ids")
    # The reference first, from the untouched model: each text alone, so no padding on its side. (Computed after
    # the TorchScript export, it came out wrong, cosine 0.78-0.81 on the long sample; why was not found.)
    enc = tokenizer(list(SAMPLE_TEXTS), padding=True, truncation=True, return_tensors="np",
                    max_length=sentence_config(folder)["max_seq_length"])
    want = []
    with torch.inference_mode():
        for row in range(len(SAMPLE_TEXTS)):
            n_real = int(enc["attention_mask"][row].sum())
            alone = {n: torch.from_numpy(enc[n][row : row + 1, :n_real]) for n in names}
            want.append(model(**alone).last_hidden_state[0].numpy().copy())
    # Traced on two texts; checked below on all of them (other lengths, heavy padding, one truncated). The
    # TorchScript exporter, not dynamo: onnxruntime's BERT fusions recognise its attention subgraph (they found
    # no Attention in the dynamo graph), and the fused graph is the faster one.
    sample = tokenizer(list(SAMPLE_TEXTS[:2]), padding=True, return_tensors="pt")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        traced = work / "model-traced.onnx"
        with torch.inference_mode():
            torch.onnx.export(TokenEmbeddings(model), tuple(sample[n] for n in names), str(traced), dynamo=False,
                              input_names=list(names), output_names=["token_embeddings"], opset_version=OPSET,
                              dynamic_axes={n: {0: "batch", 1: "sequence"} for n in names})
        fp32 = work / ("model.onnx" if QUANTIZATIONS[quantization] is None else "model-fp32.onnx")
        fused = fuse(traced, fp32, model.config)
        traced.unlink()
        q = QUANTIZATIONS[quantization]
        if q is not None:
            import onnx
            from onnxruntime.quantization import QuantType, quantize_dynamic

            # The fused nodes are in onnxruntime's domain, where shape inference gives no types: float it is.
            quantize_dynamic(str(fp32), str(work / "model.onnx"), op_types_to_quantize=list(QUANTIZED_OPS),
                             per_channel=q["per_channel"], reduce_range=q["reduce_range"],
                             weight_type=getattr(QuantType, q["weight_type"]),
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
            fp32.unlink()
        tokenizer.backend_tokenizer.save(str(work / "tokenizer.json"))

        # How far the exported model is from torch on the same inputs (mean-pooled, normalised sentence vectors).
        import onnxruntime as ort

        session = ort.InferenceSession(str(work / "model.onnx"), providers=["CPUExecutionProvider"])
        got = session.run(None, {n: enc[n].astype(np.int64) for n in names})[0]
        mask = enc["attention_mask"].astype(np.float32)
        pooled_got = [(got[r, : len(w)] * mask[r, : len(w), None]).sum(0) for r, w in enumerate(want)]
        pooled_want = [w.sum(0) for w in want]
        cosine = np.array([float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) for a, b in zip(pooled_got, pooled_want)])
        token_diff = max(float(np.abs(got[r, : len(w)] - w).max()) for r, w in enumerate(want))
        meta = {**sentence_config(folder), "source": str(folder), "config": config, "config_key": config_key(quantization),
                "torch": torch.__version__, "onnxruntime": ort.__version__, "fused": fused,
                "min_cosine_to_torch": round(float(cosine.min()), 6),
                "max_abs_token_diff": round(token_diff, 6),
                "bytes": (work / "model.onnx").stat().st_size, "seconds": round(time.perf_counter() - started, 1)}
        # A sanity bound, not the quality measure (that is SciFact, README "Embedder backends"): a broken export
        # lands far below it; int8 on texts of a few tokens (the empty one) sits near 0.98.
        floor = 0.999 if q is None else 0.95
        if meta["min_cosine_to_torch"] < floor:
            raise RuntimeError(f"exported model disagrees with torch: cosine {meta['min_cosine_to_torch']} < {floor}")
        (work / "export.json").write_text(json.dumps(meta, indent=2))
        try:
            work.rename(out)
        except OSError:  # another process exported the same thing first: theirs is as good as ours
            if not (out / "export.json").exists():
                raise
            shutil.rmtree(work, ignore_errors=True)
        return meta
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def fuse(src: Path, dst: Path, config) -> dict[str, int]:
    """`src` with onnxruntime's BERT fusions applied, written to `dst`; returns how many nodes of each fused kind
    it has. Only a graph whose every layer's attention fused is kept: for a model the fusions do not recognise
    (another architecture in the configured folder), `dst` is `src` unchanged and the result says {}."""
    from onnxruntime.transformers import optimizer

    fused = optimizer.optimize_model(str(src), model_type="bert", num_heads=int(config.num_attention_heads),
                                     hidden_size=int(config.hidden_size), opt_level=0)
    stats = {k: int(v) for k, v in fused.get_fused_operator_statistics().items() if v}
    if stats.get("Attention", 0) != int(config.num_hidden_layers):
        shutil.copyfile(src, dst)
        return {}
    fused.save_model_to_file(str(dst))
    return stats


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folder", type=Path, required=True, help="a sentence-transformers model folder")
    p.add_argument("--out", type=Path, required=True, help="the export folder to create")
    p.add_argument("--quantization", default="none", choices=sorted(QUANTIZATIONS))
    args = p.parse_args(argv)
    if (args.out / "export.json").exists():
        print(json.dumps(json.loads((args.out / "export.json").read_text())))
        return 0
    print(json.dumps(export(args.folder, args.out, args.quantization)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
