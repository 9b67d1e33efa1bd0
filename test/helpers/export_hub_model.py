#!/usr/bin/env python3
"""Test helper: a small random-weight ViT written in the Hugging Face transformers.js layout.

  OUT/config.json, OUT/preprocessor_config.json,
  OUT/onnx/model.onnx, OUT/onnx/model_fp16.onnx, OUT/onnx/model_quantized.onnx

The graph takes `pixel_values` float32 [B,3,H,W] and gives `last_hidden_state` [B,1+R+N,C] (CLS,
registers, patches) and `pooler_output` [B,C], as optimum's exports of ViTModel / Dinov2Model do.
The `dino` family adds a fixed position-embedding table (HF ViT without interpolate_pos_encoding:
only image_size fits); `dinov2` resizes it to the input grid inside the graph (HF Dinov2Embeddings).

The weights are tools/export_dino.py's --random-tiny weights for the same --family, --registers and
--seed, so the two exports can be compared feature for feature. No `transformers` package here,
so the model is plain torch; no onnxruntime for Python either, so model_quantized.onnx is the
fp32 graph under the int8 file name (what the tests check is which file is picked and loaded).
"""

import argparse
import json
import os
import shutil
import sys
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import export_dino  # noqa: E402


class HubViT(nn.Module):
    def __init__(self, vit: "export_dino.VisionTransformer", interpolate: bool) -> None:
        super().__init__()
        self.vit = vit
        self.interpolate = interpolate

    def forward(self, pixel_values: torch.Tensor):
        vit = self.vit
        cfg = vit.cfg
        x = vit.patch_embed(pixel_values)
        pos = vit.pos_embed
        if self.interpolate:
            m = cfg.pos_grid
            dim = pos.shape[-1]
            gh = pixel_values.shape[2] // cfg.patch_size
            gw = pixel_values.shape[3] // cfg.patch_size
            grid = pos[:, 1:].reshape(1, m, m, dim).permute(0, 3, 1, 2)
            grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
            pos = torch.cat((pos[:, :1], grid.flatten(2).transpose(1, 2)), dim=1)
        x = torch.cat((vit.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + pos
        if cfg.num_register_tokens:
            x = torch.cat((x[:, :1], vit.register_tokens.expand(x.shape[0], -1, -1), x[:, 1:]), dim=1)
        for blk in vit.blocks:
            x, _ = blk(x)
        x = vit.norm(x)
        return x, x[:, 0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--family", choices=["dino", "dinov2"], default="dino")
    ap.add_argument("--registers", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    cfg = export_dino.random_config("tiny", args.family, args.registers)
    vit = export_dino.VisionTransformer(cfg)
    vit.load_state_dict(export_dino.random_state_dict(cfg, args.seed), strict=True)
    vit.eval()
    model = HubViT(vit, interpolate=args.family == "dinov2").eval()
    size = cfg.pos_grid * cfg.patch_size
    os.makedirs(os.path.join(args.out, "onnx"), exist_ok=True)
    fp32 = os.path.join(args.out, "onnx", "model.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, size, size),),
            fp32,
            input_names=["pixel_values"],
            output_names=["last_hidden_state", "pooler_output"],
            dynamic_axes={
                "pixel_values": {0: "batch_size", 2: "height", 3: "width"},
                "last_hidden_state": {0: "batch_size", 1: "sequence_length"},
                "pooler_output": {0: "batch_size"},
            },
            opset_version=17,
            do_constant_folding=True,
        )
    import onnx

    model_proto = onnx.load(fp32)
    export_dino.INPUT_NAME = "pixel_values"
    half = export_dino.to_fp16(model_proto)
    onnx.save(half, os.path.join(args.out, "onnx", "model_fp16.onnx"))
    shutil.copyfile(fp32, os.path.join(args.out, "onnx", "model_quantized.onnx"))

    if args.family == "dinov2":
        model_type = "dinov2_with_registers" if args.registers else "dinov2"
    else:
        model_type = "vit"
    config = {
        "architectures": ["Dinov2Model" if args.family == "dinov2" else "ViTModel"],
        "model_type": model_type,
        "hidden_size": cfg.embed_dim,
        "num_hidden_layers": cfg.depth,
        "num_attention_heads": cfg.num_heads,
        "intermediate_size": cfg.mlp_hidden,
        "patch_size": cfg.patch_size,
        "image_size": size,
        "num_channels": 3,
        "layer_norm_eps": 1e-6,
    }
    if args.registers:
        config["num_register_tokens"] = args.registers
    preprocessor = {
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": list(export_dino.IMAGENET_MEAN),
        "image_std": list(export_dino.IMAGENET_STD),
        "rescale_factor": 1 / 255,
        "resample": 3,
        "size": {"height": size, "width": size},
        "image_processor_type": "ViTImageProcessor",
    }
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(args.out, "preprocessor_config.json"), "w") as f:
        json.dump(preprocessor, f, indent=2)
    print(f"wrote {args.out}: {model_type}, patch {cfg.patch_size}, dim {cfg.embed_dim}, {size}x{size}")


if __name__ == "__main__":
    main()
