#!/usr/bin/env python3
"""Export a DINO or DINOv2 ViT checkpoint as a stegostream backbone ONNX model.

The model keeps the backbone contract of DESIGN.md ("Backbone ONNX model"):

  input   image         float32 [B,3,H,W]  RGB scaled to 0..1, then (x - mean) / std (ImageNet)
  output  patch_tokens  float32 [B,N,C]    final-norm patch tokens, N = (H/p)*(W/p), row-major grid
  output  cls_token     float32 [B,C]      final-norm CLS token
  output  keys          float32 [B,N,C]    last block's attention keys of the patch tokens, heads
                                           concatenated (what LOST correlates)
  metadata_props        patch_size, embed_dim, input_height, input_width, name, mean, std (JSON
                        arrays), plus family, num_register_tokens, source, exporter

B is dynamic; H and W are fixed at export (--height/--width, multiples of the patch size).

Why fixed H and W: a DINO checkpoint holds position embeddings for one grid (14x14 for the 224 px
DINO models, 37x37 for DINOv2). The authors' `interpolate_pos_encoding` resizes them bicubically on
every call, from the input's shape. Traced with a dynamic size, that becomes a Shape -> arithmetic ->
Resize subgraph: fragile to export (the +0.1 scale-factor kludge must survive as float scales, the
antialiased bicubic of the DINOv2 register models has no Resize form before opset 18, and exporter
versions differ in what they emit), and run again on every frame although a pipeline's size never
changes. So the embeddings are interpolated here ONCE, in eager torch with exactly the authors' call
(same scale factors, offset and antialias), and baked in as a constant: the graph is exact, smaller
and faster. Export again for another size.

The ViT is defined here (no timm, no torch.hub) with the parameter names of the published state
dicts, and loads them strictly. The architecture is read from the tensor shapes: embed dim and
patch size from `patch_embed.proj.weight`, depth from the `blocks.*` indices, heads from
the embed dim (64 per head, as in every published model), DINOv2 from `mask_token`/`ls1.gamma`,
registers from `register_tokens`. `--arch` and `--heads` force what cannot be read.

Needs torch >= 1.13 (weights-only loading) and onnx; no GPU, no network.

Examples:
  export_dino.py dino_deitsmall8_pretrain.pth --out dino_vits8.onnx --height 448 --width 448
  export_dino.py dinov2_vits14_pretrain.pth --out dinov2_vits14.onnx --height 434 --width 770
  export_dino.py --random-tiny --out tiny.onnx --reference tiny.bin     (tests)
  export_dino.py --random-vits16 --out vits16-random.onnx                (bench)
  export_dino.py --random-vitb16 --out vitb16-random.onnx                (bench)
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import pickle
import re
import sys
import time
import warnings
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_NAME = "image"
OUTPUT_NAMES = ("patch_tokens", "cls_token", "keys")
DEFAULT_SIZE_PX = 224
DEFAULT_OPSET = 17
LAYER_NORM_EPS = 1e-6  # every published DINO/DINOv2 ViT uses partial(nn.LayerNorm, eps=1e-6)
HEAD_DIM = 64  # every published DINO/DINOv2 ViT has 64 channels per head

# Published shapes. DINOv2 weights are named vit_small/vit_base/... in the authors' code too.
ARCHS = {
    "vit_tiny": dict(embed_dim=192, depth=12, num_heads=3, short="vitt"),
    "vit_small": dict(embed_dim=384, depth=12, num_heads=6, short="vits"),
    "vit_base": dict(embed_dim=768, depth=12, num_heads=12, short="vitb"),
    "vit_large": dict(embed_dim=1024, depth=24, num_heads=16, short="vitl"),
    "vit_giant2": dict(embed_dim=1536, depth=40, num_heads=24, short="vitg"),
}
# Checkpoint wrappers, in the order they are looked for (DINO full checkpoints hold both student
# and teacher; the teacher is the one the authors evaluate and publish).
WRAPPER_KEYS = ("teacher", "model", "state_dict")
PREFIXES = ("module.", "backbone.")


class ExportError(Exception):
    """A failure the user can fix; printed without a traceback, exit code 2."""


# ---------------------------------------------------------------------------------------------
# Architecture


@dataclass(frozen=True)
class ViTConfig:
    family: str  # "dino" | "dinov2"
    arch: str  # a key of ARCHS, or "custom"
    patch_size: int
    embed_dim: int
    depth: int
    num_heads: int
    mlp_hidden: int
    ffn: str  # "mlp" | "swiglu" (DINOv2 ViT-g)
    layerscale: bool
    mask_token: bool
    num_register_tokens: int
    pos_grid: int  # side of the square position-embedding grid the checkpoint holds
    interpolate_offset: float
    interpolate_antialias: bool

    def describe(self) -> str:
        fam = "DINOv2" if self.family == "dinov2" else "DINO"
        arch = self.arch if self.arch != "custom" else "custom ViT"
        regs = f", {self.num_register_tokens} registers" if self.num_register_tokens else ""
        return (
            f"{fam} {arch}/{self.patch_size} (embed dim {self.embed_dim}, depth {self.depth}, "
            f"heads {self.num_heads}, {self.ffn.upper()} {self.mlp_hidden}, position grid "
            f"{self.pos_grid}x{self.pos_grid}{regs})"
        )

    def default_name(self) -> str:
        if self.arch in ARCHS:
            base = f"{self.family}_{ARCHS[self.arch]['short']}{self.patch_size}"
        else:
            base = f"{self.family}_vit{self.embed_dim}x{self.depth}_p{self.patch_size}"
        return base + (f"_reg{self.num_register_tokens}" if self.num_register_tokens else "")


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwiGLUFFN(nn.Module):
    """DINOv2 ViT-g's feed-forward (`SwiGLUFFNFused`): w12 holds both input projections."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(x1) * x2)


class LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the block output and the keys as [B, T, C] (heads concatenated)."""
        b, t, c = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, t, c)
        return self.proj(out), k.transpose(1, 2).reshape(b, t, c)


class Block(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        c = cfg.embed_dim
        self.norm1 = nn.LayerNorm(c, eps=LAYER_NORM_EPS)
        self.attn = Attention(c, cfg.num_heads)
        self.ls1 = LayerScale(c) if cfg.layerscale else nn.Identity()
        self.norm2 = nn.LayerNorm(c, eps=LAYER_NORM_EPS)
        self.mlp = SwiGLUFFN(c, cfg.mlp_hidden) if cfg.ffn == "swiglu" else Mlp(c, cfg.mlp_hidden)
        self.ls2 = LayerScale(c) if cfg.layerscale else nn.Identity()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, keys = self.attn(self.norm1(x))
        x = x + self.ls1(y)
        x = x + self.ls2(self.mlp(self.norm2(x)))
        return x, keys


class VisionTransformer(nn.Module):
    """DINO / DINOv2 ViT with the parameter names of the published checkpoints."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        c = cfg.embed_dim
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg.patch_size, c)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + cfg.pos_grid * cfg.pos_grid, c))
        if cfg.num_register_tokens:
            self.register_tokens = nn.Parameter(torch.zeros(1, cfg.num_register_tokens, c))
        if cfg.mask_token:
            # Used by DINOv2 training only; kept so that the checkpoint loads key for key.
            self.mask_token = nn.Parameter(torch.zeros(1, c))
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(c, eps=LAYER_NORM_EPS)

    @torch.no_grad()
    def pos_embed_for_grid(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """Position embeddings for a grid_h x grid_w patch grid, as the authors'
        `interpolate_pos_encoding` computes them (same call, same kludges), in eager mode."""
        cfg = self.cfg
        pos = self.pos_embed.float()
        m = cfg.pos_grid
        if grid_h == m and grid_w == m:
            return pos.clone()
        dim = pos.shape[-1]
        patch_pos = pos[:, 1:].reshape(1, m, m, dim).permute(0, 3, 1, 2)
        kwargs: dict = {}
        if cfg.interpolate_offset:
            # The authors add 0.1 to the output grid and pass scale factors, which torch also uses
            # to map coordinates (see facebookresearch/dino issue 8); reproduce it exactly.
            kwargs["scale_factor"] = (
                float(grid_h + cfg.interpolate_offset) / m,
                float(grid_w + cfg.interpolate_offset) / m,
            )
        else:
            kwargs["size"] = (grid_h, grid_w)
        if cfg.interpolate_antialias:
            kwargs["antialias"] = True
        patch_pos = F.interpolate(patch_pos, mode="bicubic", **kwargs)
        if tuple(patch_pos.shape[-2:]) != (grid_h, grid_w):
            raise ExportError(
                f"position embedding interpolation gave a {tuple(patch_pos.shape[-2:])} grid "
                f"instead of {(grid_h, grid_w)}; choose another --height/--width"
            )
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, dim)
        return torch.cat((pos[:, :1], patch_pos), dim=1)


class ExportBackbone(nn.Module):
    """The traced module: a ViT at one input size, with its position embeddings baked in."""

    def __init__(self, vit: VisionTransformer, height: int, width: int) -> None:
        super().__init__()
        p = vit.cfg.patch_size
        self.vit = vit
        self.skip = 1 + vit.cfg.num_register_tokens  # CLS, then registers, then patches
        self.register_buffer("pos", vit.pos_embed_for_grid(height // p, width // p).contiguous())

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        vit = self.vit
        x = vit.patch_embed(image)
        x = torch.cat((vit.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos
        if vit.cfg.num_register_tokens:
            regs = vit.register_tokens.expand(x.shape[0], -1, -1)
            x = torch.cat((x[:, :1], regs, x[:, 1:]), dim=1)
        keys = x
        for blk in vit.blocks:
            x, keys = blk(x)
        x = vit.norm(x)
        return x[:, self.skip :], x[:, 0], keys[:, self.skip :]


# ---------------------------------------------------------------------------------------------
# Checkpoints


def read_checkpoint(path: str, trust: bool) -> dict:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as err:
        # torch reports Python objects as "Unsupported class X" (1.13) / "Unsupported global" (2.x).
        if trust or not re.search(r"unsupported (class|global)", str(err), re.IGNORECASE):
            reason = str(err).split("WeightsUnpickler error: ")[-1]  # drop torch's advice to unpickle
            raise ExportError(
                f'"{path}" is not a PyTorch checkpoint torch.load can read ({reason}). '
                "A truncated download looks like this: download it again."
            ) from err
        raise ExportError(
            f'"{path}" holds Python objects besides tensors (a full training checkpoint with its '
            "arguments?), which torch will not unpickle safely. Use the *_pretrain.pth backbone file "
            "the authors publish, or pass --trust-checkpoint if you trust where the file came from."
        ) from err
    except Exception as err:  # zip/pickle/EOF errors: a truncated download or not a checkpoint
        raise ExportError(
            f'"{path}" is not a PyTorch checkpoint torch.load can read ({type(err).__name__}: {err}). '
            "A truncated download looks like this: download it again."
        ) from err
    return unwrap_state_dict(obj, path)


def unwrap_state_dict(obj: object, source: str) -> dict:
    """Finds the backbone's state dict in the wrappers training code saves."""
    seen = []
    while isinstance(obj, dict) and not any(torch.is_tensor(v) for v in obj.values()):
        key = next((k for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
        if key is None:
            keys = ", ".join(map(str, list(obj)[:8])) or "none"
            raise ExportError(
                f'"{source}" holds no state dict: top-level keys are {keys}; expected tensors or '
                f"one of {', '.join(WRAPPER_KEYS)}."
            )
        seen.append(key)
        obj = obj[key]
    if not isinstance(obj, dict):
        raise ExportError(f'"{source}" holds a {type(obj).__name__}, not a state dict.')
    if seen:
        progress(f"using the state dict under {'/'.join(repr(k) for k in seen)}")
    sd = dict(obj)
    for prefix in PREFIXES:
        if not any(k.startswith(prefix) for k in sd):
            continue
        kept = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
        dropped = sorted({k.split(".")[0] for k in sd if not k.startswith(prefix)})
        if dropped:
            progress(f"dropping {len(sd) - len(kept)} tensors outside '{prefix}' ({', '.join(dropped)})")
        sd = kept
    # DINOv2 training code may chunk the blocks for FSDP: blocks.<chunk>.<index>.* -> blocks.<index>.*
    sd = {re.sub(r"^blocks\.\d+\.(\d+)\.", r"blocks.\1.", k): v for k, v in sd.items()}
    not_tensors = [k for k, v in sd.items() if not torch.is_tensor(v)]
    if not_tensors:
        raise ExportError(f'"{source}": entries that are not tensors: {", ".join(not_tensors[:8])}')
    return {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}


def detect_config(sd: dict, arch: str | None, heads: int | None, source: str) -> ViTConfig:
    """Reads the architecture off the tensor shapes; `arch`/`heads` force it."""
    w = sd.get("patch_embed.proj.weight")
    if w is None or w.dim() != 4 or w.shape[1] != 3 or w.shape[2] != w.shape[3]:
        sample = ", ".join(list(sd)[:6])
        raise ExportError(
            f'"{source}" is not a DINO/DINOv2 ViT checkpoint: no square 3-channel '
            f"patch_embed.proj.weight (keys start {sample}). Give a ViT backbone checkpoint such as "
            "dino_deitsmall8_pretrain.pth or dinov2_vits14_pretrain.pth (see docs/models.md)."
        )
    embed_dim, patch_size = int(w.shape[0]), int(w.shape[2])
    block_ids = {int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k))}
    if not block_ids:
        raise ExportError(f'"{source}" has a patch embedding but no blocks.* tensors: not a ViT backbone.')
    pos = sd.get("pos_embed")
    grid = math.isqrt(pos.shape[1] - 1) if pos is not None and pos.dim() == 3 else 0
    if pos is None or grid * grid != pos.shape[1] - 1:
        shape = list(pos.shape) if pos is not None else "missing"
        raise ExportError(
            f'"{source}": pos_embed is {shape}, expected [1, 1 + g*g, C] for a square grid g. '
            "Give a checkpoint as the DINO/DINOv2 authors publish it."
        )
    first = min(block_ids)
    family = "dinov2" if "mask_token" in sd or any(".ls1.gamma" in k for k in sd) else "dino"
    ffn = "swiglu" if f"blocks.{first}.mlp.w12.weight" in sd else "mlp"
    hidden_w = sd.get(f"blocks.{first}.mlp.w12.weight" if ffn == "swiglu" else f"blocks.{first}.mlp.fc1.weight")
    mlp_hidden = int(hidden_w.shape[0]) // (2 if ffn == "swiglu" else 1) if hidden_w is not None else 4 * embed_dim
    regs = sd.get("register_tokens")
    num_regs = int(regs.shape[1]) if regs is not None and regs.dim() == 3 else 0

    if arch is not None:
        spec = ARCHS[arch]
        embed_dim, depth, num_heads = spec["embed_dim"], spec["depth"], spec["num_heads"]
        mlp_hidden = 4 * embed_dim if ffn == "mlp" else mlp_hidden
    else:
        arch = next((name for name, s in ARCHS.items() if s["embed_dim"] == embed_dim), "custom")
        if arch != "custom":
            # Published depth, so that a checkpoint missing its last blocks is reported, not
            # silently exported shallower.
            depth, num_heads = ARCHS[arch]["depth"], ARCHS[arch]["num_heads"]
        else:
            depth = max(block_ids) + 1
            if heads is None and embed_dim % HEAD_DIM != 0:
                raise ExportError(
                    f'"{source}": embed dim {embed_dim} is no published ViT and not a multiple of '
                    f"{HEAD_DIM}, so the number of heads cannot be read off it: pass --heads N."
                )
            num_heads = embed_dim // HEAD_DIM if heads is None else heads
    if heads is not None:
        num_heads = heads
    if embed_dim % num_heads != 0:
        raise ExportError(f"--heads {num_heads} does not divide embed dim {embed_dim}.")
    with_regs = family == "dinov2" and num_regs > 0
    return ViTConfig(
        family=family,
        arch=arch,
        patch_size=patch_size,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        mlp_hidden=mlp_hidden,
        ffn=ffn,
        layerscale=family == "dinov2",  # all published DINOv2 weights use LayerScale
        mask_token=family == "dinov2",
        num_register_tokens=num_regs,
        pos_grid=grid,
        # As the authors' hub entries build them: the register models interpolate with an exact
        # output size and antialiasing, all others with the historical +0.1 offset.
        interpolate_offset=0.0 if with_regs else 0.1,
        interpolate_antialias=with_regs,
    )


def shape_str(shape) -> str:
    return "[" + ",".join(str(int(d)) for d in shape) + "]"


def key_list(keys: list[str], limit: int = 24) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... and {len(keys) - limit} more" if len(keys) > limit else "")


def load_strict(model: VisionTransformer, sd: dict, source: str) -> None:
    """load_state_dict(strict=True), with an error that names what does not fit and the fix."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    mismatched = [
        f"{k} (checkpoint {shape_str(sd[k].shape)}, model {shape_str(v.shape)})"
        for k, v in expected.items()
        if k in sd and sd[k].shape != v.shape
    ]
    if missing or unexpected or mismatched:
        lines = [f'checkpoint "{source}" does not fit {model.cfg.describe()}:']
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {key_list(missing)}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {key_list(unexpected)}")
        if mismatched:
            lines.append(f"  shape mismatches ({len(mismatched)}): {key_list(mismatched, 8)}")
        lines.append(
            "Fix: give a ViT backbone checkpoint as the DINO/DINOv2 authors publish it (e.g. "
            "dino_deitsmall8_pretrain.pth, dinov2_vits14_pretrain.pth; see docs/models.md). A "
            "truncated or partial file looks like this: download it again. If the architecture was "
            f"read wrongly, force it with --arch {{{','.join(ARCHS)}}} and/or --heads N."
        )
        raise ExportError("\n".join(lines))
    model.load_state_dict(sd, strict=True)


# ---------------------------------------------------------------------------------------------
# Random weights (tests, bench): built as a state dict and exported through the same path.


def random_state_dict(cfg: ViTConfig, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    model = VisionTransformer(cfg)
    sd = {}
    for name, p in model.state_dict().items():
        leaf = name.rsplit(".", 1)[-1]
        is_norm = ".norm" in f".{name}" and leaf == "weight"
        if is_norm or leaf == "gamma":
            t = 1.0 + 0.1 * torch.randn(p.shape, generator=gen)
        elif leaf == "bias":
            t = 0.1 * torch.randn(p.shape, generator=gen)
        elif p.dim() >= 2 and leaf == "weight":
            t = torch.randn(p.shape, generator=gen) / math.sqrt(p[0].numel())
        else:  # cls/pos/register/mask tokens
            t = 0.5 * torch.randn(p.shape, generator=gen)
        sd[name] = t
    return sd


def random_config(kind: str, family: str, registers: int) -> ViTConfig:
    if kind == "tiny":
        arch, dim, depth, heads, patch = "custom", 32, 2, 2, 8
    elif kind == "vitb16":
        arch, dim, depth, heads, patch = "vit_base", 768, 12, 12, 16
    else:
        arch, dim, depth, heads, patch = "vit_small", 384, 12, 6, 16
    return ViTConfig(
        family=family,
        arch=arch,
        patch_size=patch,
        embed_dim=dim,
        depth=depth,
        num_heads=heads,
        mlp_hidden=4 * dim,
        ffn="mlp",
        layerscale=family == "dinov2",
        mask_token=family == "dinov2",
        num_register_tokens=registers,
        pos_grid=DEFAULT_SIZE_PX // patch,
        interpolate_offset=0.0 if registers else 0.1,
        interpolate_antialias=registers > 0,
    )


# ---------------------------------------------------------------------------------------------
# ONNX


def export_onnx(wrapper: ExportBackbone, height: int, width: int, path: str, opset: int) -> None:
    dummy = torch.zeros(1, 3, height, width)
    axes = {INPUT_NAME: {0: "B"}, **{name: {0: "B"} for name in OUTPUT_NAMES}}
    # The TorchScript tracer: torch 2.9+ would otherwise pick the dynamo exporter (onnxscript).
    extra = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about python ints from shapes
        torch.onnx.export(
            wrapper,
            (dummy,),
            path,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
            **extra,
        )


def to_fp16(model):
    """Weights and compute in float16; the input and outputs stay float32 (Cast at both ends), so
    the contract holds. For GPU providers: CPU kernels for float16 are sparse."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph

    def convert_tensor(t):
        if t.data_type == TensorProto.FLOAT:
            arr = numpy_helper.to_array(t).astype(np.float16)
            t.CopyFrom(numpy_helper.from_array(arr, t.name))

    for init in graph.initializer:
        convert_tensor(init)
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx_attr_type("TENSOR"):
                convert_tensor(attr.t)
            if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16
    for vi in graph.value_info:
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            vi.type.tensor_type.elem_type = TensorProto.FLOAT16
    half_in = f"{INPUT_NAME}_fp16"
    for node in graph.node:
        node.input[:] = [half_in if i == INPUT_NAME else i for i in node.input]
    casts_out = []
    for out in graph.output:
        half_out = f"{out.name}_fp16"
        for node in graph.node:
            node.output[:] = [half_out if o == out.name else o for o in node.output]
            node.input[:] = [half_out if i == out.name else i for i in node.input]
        casts_out.append(helper.make_node("Cast", [half_out], [out.name], to=TensorProto.FLOAT))
    cast_in = helper.make_node("Cast", [INPUT_NAME], [half_in], to=TensorProto.FLOAT16)
    nodes = [cast_in, *graph.node, *casts_out]
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def onnx_attr_type(name: str) -> int:
    from onnx import AttributeProto

    return getattr(AttributeProto, name)


def finish_onnx(path: str, metadata: dict, fp16: bool) -> None:
    import onnx

    model = onnx.load(path)
    if fp16:
        model = to_fp16(model)
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    model.producer_name = "stegostream tools/export_dino.py"
    model.doc_string = f"{metadata['name']}: DINO ViT backbone for stegostream ({metadata['family']})"
    onnx.checker.check_model(model)
    onnx.save(model, path)


def write_reference(wrapper: ExportBackbone, height: int, width: int, path: str, batch: int, seed: int) -> str:
    """Input and torch outputs as raw little-endian float32, one after the other; the JSON sidecar
    (same path, .json) gives each tensor's name, shape and byte offset."""
    gen = torch.Generator().manual_seed(seed)
    image = torch.randn(batch, 3, height, width, generator=gen)
    with torch.no_grad():
        outputs = wrapper(image)
    tensors, offset = [], 0
    with open(path, "wb") as f:
        for name, t in ((INPUT_NAME, image), *zip(OUTPUT_NAMES, outputs)):
            data = t.detach().contiguous().float().numpy().astype("<f4").tobytes()
            f.write(data)
            tensors.append({"name": name, "shape": list(t.shape), "byteOffset": offset, "byteLength": len(data)})
            offset += len(data)
    sidecar = os.path.splitext(path)[0] + ".json"
    with open(sidecar, "w", encoding="utf-8") as f:
        json.dump({"dtype": "float32", "byteOrder": "little", "seed": seed, "tensors": tensors}, f)
    return sidecar


# ---------------------------------------------------------------------------------------------
# CLI


def progress(message: str) -> None:
    print(f"export_dino: {message}", file=sys.stderr, flush=True)


def max_onnx_opset() -> int:
    try:
        from torch.onnx import _constants

        return int(getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", _constants.ONNX_MAX_OPSET))
    except (ImportError, AttributeError):
        return DEFAULT_OPSET


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="export_dino.py",
        description="Export a DINO/DINOv2 ViT checkpoint as a stegostream backbone ONNX model "
        "(input image [B,3,H,W]; outputs patch_tokens, cls_token, keys).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Checkpoints and download addresses: docs/models.md.",
    )
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("checkpoint", nargs="?", help="a .pth as published by the DINO/DINOv2 authors")
    src.add_argument("--random-tiny", action="store_true", help="random ViT: patch 8, dim 32, depth 2, 2 heads")
    src.add_argument("--random-vits16", action="store_true", help="random ViT-S/16: dim 384, depth 12, 6 heads")
    src.add_argument("--random-vitb16", action="store_true", help="random ViT-B/16: dim 768, depth 12, 12 heads")
    add = parser.add_argument
    add("-o", "--out", help="ONNX file to write (default: ./<name>_<H>x<W>.onnx)")
    add("--height", type=int, default=DEFAULT_SIZE_PX, help="input height in px, a multiple of the patch (224)")
    add("--width", type=int, default=DEFAULT_SIZE_PX, help="input width in px, a multiple of the patch (224)")
    add("--arch", choices=list(ARCHS), help="force the architecture instead of reading it off the shapes")
    add("--heads", type=int, help="force the number of attention heads (default: embed dim / 64)")
    add("--name", help="model name in the metadata (default e.g. dino_vits8, dinov2_vits14)")
    add("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    add("--fp16", action="store_true", help="float16 weights and compute, float32 input/outputs (GPU)")
    add("--trust-checkpoint", action="store_true", help="allow a checkpoint holding Python objects (unpickling)")
    add("--reference", metavar="OUT.bin", help="also write a seeded input and torch's outputs (float32 + OUT.json)")
    add("--reference-batch", type=int, default=2, help="batch size of the reference input (default 2)")
    add("--family", choices=["dino", "dinov2"], default="dino", help="layout of the --random-* weights (dino)")
    add("--registers", type=int, default=0, help="register tokens of the --random-* weights (DINOv2 layout)")
    add("--seed", type=int, default=0, help="seed of the random weights and of the reference input (0)")
    args = parser.parse_args(argv)
    max_opset = max_onnx_opset()
    if args.opset < 13 or args.opset > max_opset:
        parser.error(f"--opset must be 13..{max_opset} with torch {torch.__version__}, got {args.opset}")
    for flag in ("height", "width", "reference_batch"):
        if getattr(args, flag) <= 0:
            parser.error(f"--{flag.replace('_', '-')} must be a positive integer, got {getattr(args, flag)}")
    if args.heads is not None and args.heads <= 0:
        parser.error(f"--heads must be a positive integer, got {args.heads}")
    if args.registers < 0 or (args.registers and args.family != "dinov2"):
        parser.error("--registers needs --family dinov2 and a count >= 0")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    step = 0

    def stage(message: str) -> None:
        nonlocal step
        step += 1
        progress(f"[{step}/5] {message}")

    if args.checkpoint:
        source = os.path.basename(args.checkpoint)
        if not os.path.isfile(args.checkpoint):
            raise ExportError(f'cannot read checkpoint "{args.checkpoint}": no such file. Check the path.')
        size_mb = os.path.getsize(args.checkpoint) / 1e6
        stage(f"reading {source} ({size_mb:.1f} MB)")
        sd = read_checkpoint(args.checkpoint, args.trust_checkpoint)
        heads = args.heads
    else:
        kind = "tiny" if args.random_tiny else "vitb16" if args.random_vitb16 else "vits16"
        rcfg = random_config(kind, args.family, args.registers)
        source = f"random-{kind} (seed {args.seed})"
        stage(f"building random weights: {rcfg.describe()}")
        sd = random_state_dict(rcfg, args.seed)
        heads = args.heads if args.heads is not None else rcfg.num_heads
    cfg = detect_config(sd, args.arch, heads, source)
    p = cfg.patch_size
    if args.height % p or args.width % p:
        raise ExportError(
            f"--height {args.height} and --width {args.width} must be multiples of the patch size {p} "
            f"(e.g. {args.height // p * p or p}x{args.width // p * p or p})."
        )
    if args.name:
        name = args.name
    elif args.checkpoint:
        name = cfg.default_name()
    else:
        name = f"random_{kind}" if not args.random_tiny else "random_tiny_p8"
    stage(f"architecture {cfg.describe()}")
    model = VisionTransformer(cfg)
    load_strict(model, sd, source)
    model.eval()
    n_params = sum(t.numel() for t in sd.values())
    grid_h, grid_w = args.height // p, args.width // p
    wrapper = ExportBackbone(model, args.height, args.width).eval()
    resized = (
        f"{cfg.pos_grid}x{cfg.pos_grid} -> {grid_h}x{grid_w} (bicubic, once)"
        if (grid_h, grid_w) != (cfg.pos_grid, cfg.pos_grid)
        else f"{grid_h}x{grid_w} as in the checkpoint"
    )
    progress(f"loaded {len(sd)} tensors ({n_params / 1e6:.2f} M values) strictly; position embeddings {resized}")
    out = args.out or f"{name}_{args.height}x{args.width}.onnx"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    stage(f"tracing to ONNX, opset {args.opset}{' (float16)' if args.fp16 else ''}")
    export_onnx(wrapper, args.height, args.width, out, args.opset)
    metadata = {
        "patch_size": p,
        "embed_dim": cfg.embed_dim,
        "input_height": args.height,
        "input_width": args.width,
        "name": name,
        "mean": json.dumps(list(IMAGENET_MEAN), separators=(",", ":")),
        "std": json.dumps(list(IMAGENET_STD), separators=(",", ":")),
        "family": cfg.family,
        "num_register_tokens": cfg.num_register_tokens,
        "weights_dtype": "float16" if args.fp16 else "float32",
        "source": source,
        "exporter": "stegostream tools/export_dino.py",
    }
    stage("writing metadata, checking the graph")
    finish_onnx(out, metadata, args.fp16)
    if args.reference:
        sidecar = write_reference(wrapper, args.height, args.width, args.reference, args.reference_batch, args.seed)
        progress(f"reference: {args.reference} + {sidecar} (batch {args.reference_batch}, seed {args.seed})")
    n = grid_h * grid_w
    c = cfg.embed_dim
    stage(f"done in {time.monotonic() - started:.1f} s")
    print(f"wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB): {name}, {cfg.describe()}")
    print(f"  input   {INPUT_NAME:<13} float32 [B,3,{args.height},{args.width}]  RGB 0..1, (x - mean) / std")
    print(f"  output  patch_tokens  float32 [B,{n},{c}]  grid {grid_h}x{grid_w}, row-major")
    print(f"  output  cls_token     float32 [B,{c}]")
    print(f"  output  keys          float32 [B,{n},{c}]  last block's attention keys (LOST)")
    print("  metadata " + " ".join(f"{k}={v}" for k, v in metadata.items()))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except ExportError as err:
        print(f"export_dino: error: {err}", file=sys.stderr)
        sys.exit(2)
