"""vitlearn's UniFormer against the official code (Sense-X/UniFormer), which vitlearn does not ship.

    git clone https://github.com/Sense-X/UniFormer /tmp/UniFormer       # once, outside this repository
    python scripts/check_uniformer_official.py --official /tmp/UniFormer
    python scripts/check_uniformer_official.py --official /tmp/UniFormer --dump-keys tests/data/uniformer_official_keys.json

For every variant the official module is built, every parameter and buffer randomised
(``vitlearn.utils.randomize_``), and its state dict loaded into the vitlearn model with
``load_state_dict(strict=True)``; both then run in float64 on the same random batch of 2 and the
table reports max|Δ| / max|official logit|. Token-labeling (TL) models are also compared in train
mode (MixToken off): (class logits, per-token logits), BatchNorm on batch statistics.
``--dump-keys`` writes the official key -> shape list the package tests compare against.

The official files import timm helpers (installed) and, for video, the SlowFast package; the latter
is replaced by stubs here (a logger and a registry), nothing of the model code is changed.

Results (2026-12-01, CPU, float64; images 224², clips 8×224²; official commit 52a0415):

    variant                           official                        eval rel err   train rel err
    uniformer_small                   plain uniformer_small           see RESULTS below
"""
from __future__ import annotations

import argparse
import contextlib
import io
import importlib.util
import json
import logging
import sys
import time
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import vitlearn  # noqa: E402
from vitlearn.utils import randomize_  # noqa: E402


def _load(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_official(root: Path) -> dict[str, types.ModuleType]:
    """The three official model files as modules: plain image, token-labeling image, video."""
    registry = types.ModuleType("timm.models.registry")  # keep the official names out of timm's registry
    registry.register_model = lambda fn: fn
    sys.modules["timm.models.registry"] = registry
    plain = _load("official_uniformer_plain", root / "image_classification/models/uniformer.py")
    tl = _load("official_uniformer_tl", root / "image_classification/token_labeling/tlt/models/uniformer.py")
    # video: stand-ins for the SlowFast package the file imports from
    for name in ("slowfast", "slowfast.utils", "official_uniformer_video_pkg"):
        pkg = types.ModuleType(name)
        pkg.__path__ = []
        sys.modules[name] = pkg
    log = types.ModuleType("slowfast.utils.logging")
    log.get_logger = logging.getLogger
    sys.modules["slowfast.utils.logging"] = log
    build = types.ModuleType("official_uniformer_video_pkg.build")
    build.MODEL_REGISTRY = types.SimpleNamespace(register=lambda: (lambda cls: cls))
    sys.modules["official_uniformer_video_pkg.build"] = build
    video = _load("official_uniformer_video_pkg.uniformer", root / "video_classification/slowfast/models/uniformer.py")
    return {"plain": plain, "tl": tl, "video": video}


def _video_cfg(depth):
    ns = types.SimpleNamespace
    return ns(
        UNIFORMER=ns(DEPTH=depth, EMBED_DIM=[64, 128, 320, 512], HEAD_DIM=64, MLP_RATIO=4, QKV_BIAS=True, QKV_SCALE=None,
                     REPRESENTATION_SIZE=None, DROPOUT_RATE=0, ATTENTION_DROPOUT_RATE=0, DROP_DEPTH_RATE=0.0,
                     SPLIT=False, STD=False),
        MODEL=ns(NUM_CLASSES=400, USE_CHECKPOINT=False, CHECKPOINT_NUM=[0, 0, 0, 0]),
        DATA=ns(TRAIN_CROP_SIZE=224, INPUT_CHANNEL_NUM=[3]),
    )


# (label, vitlearn name, vitlearn kwargs, official file, official builder or video depths, LayerScale flag)
CASES = [
    ("uniformer_small", "uniformer_small", {}, "plain", "uniformer_small", False),
    ("uniformer_small_plus", "uniformer_small_plus", {}, "plain", "uniformer_small_plus", False),
    ("uniformer_base", "uniformer_base", {}, "plain", "uniformer_base", False),
    ("uniformer_base_ls", "uniformer_base_ls", {}, "plain", "uniformer_base_ls", True),
    ("uniformer_large_ls", "uniformer_large_ls", {}, "tl", "uniformer_large_ls", True),
    ("uniformer_small+TL", "uniformer_small", dict(token_labeling=True, head_dim=32), "tl", "uniformer_small", False),
    ("uniformer_small_plus+TL", "uniformer_small_plus", dict(token_labeling=True), "tl", "uniformer_small_plus", False),
    ("uniformer_base+TL", "uniformer_base", dict(token_labeling=True, head_dim=32), "tl", "uniformer_base", False),
    ("uniformer_small_video", "uniformer_small_video", {}, "video", [3, 4, 8, 3], False),
    ("uniformer_base_video", "uniformer_base_video", {}, "video", [5, 8, 20, 7], False),
]


def build_official(modules, kind, builder, layer_scale, img_size):
    mod = modules[kind]
    if kind == "video":
        return mod.Uniformer(_video_cfg(builder)), "video Uniformer(cfg)"
    mod.layer_scale = False  # the official builders of *_ls set this module global and never reset it
    # the plain code's stem asserts the input size it was built for; the TL code accepts any
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a line per LayerScale block
        model = getattr(mod, builder)(img_size=img_size)
    assert any("gamma_1" in k for k in model.state_dict()) == layer_scale
    if kind == "tl":
        model.mix_token = False  # an augmentation (random boxes), not part of the function
    return model, f"{kind} {builder}"


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--official", type=Path, required=True, help="checkout of Sense-X/UniFormer")
    parser.add_argument("--dump-keys", type=Path, help="write the official key -> shape lists as JSON")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--only", nargs="*", help="labels to run (default: all)")
    args = parser.parse_args()
    modules = load_official(args.official)
    torch.manual_seed(0)
    keys, rows = {}, []
    for label, name, kwargs, kind, builder, ls in CASES:
        if args.only and label not in args.only:
            continue
        start = time.perf_counter()
        official, desc = build_official(modules, kind, builder, ls, args.img_size)
        keys[label] = [[k, list(v.shape)] for k, v in official.state_dict().items()]
        official = randomize_(official).double().eval()
        ours = vitlearn.create_model(name, **kwargs).double().eval()
        ours.load_state_dict(official.state_dict(), strict=True)
        shape = (2, 3, args.frames, args.img_size, args.img_size) if kind == "video" else (2, 3, args.img_size, args.img_size)
        x = torch.randn(shape, dtype=torch.float64)
        with torch.no_grad():
            ref = official([x]) if kind == "video" else official(x)
            out = ours(x)
            err = rel(out, ref)
            train_err = "-"
            if kind == "tl":
                official.train(), ours.train()
                ref_cls, ref_aux, _ = official(x)
                cls, aux = ours(x)
                train_err = f"{max(rel(cls, ref_cls), rel(aux, ref_aux)):.1e}"
        row = (label, desc, f"{err:.1e}", train_err, f"{time.perf_counter() - start:.0f}s")
        rows.append(row)
        print("  ".join(f"{c:<28}" if i < 2 else f"{c:>10}" for i, c in enumerate(row)), flush=True)
        assert err < 1e-6, f"{label}: relative error {err:.2e}"
    if args.dump_keys:
        args.dump_keys.parent.mkdir(parents=True, exist_ok=True)
        with open(args.dump_keys, "w") as f:
            f.write("{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}" for k, v in keys.items())
                    + "\n}\n")
        print(f"wrote {args.dump_keys}")


if __name__ == "__main__":
    main()
