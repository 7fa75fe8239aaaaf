"""Trains the small ViT (chapter 1) and the small Swin (chapter 2) whose attention the chapters inspect.

    python scripts/train_chapter_models_12.py                 # both models, writes notebooks/checkpoints/
    python scripts/train_chapter_models_12.py --models vit    # one of them
    python scripts/train_chapter_models_12.py --epochs 1 --placements 1 --subset 128 --out-dir /tmp/smoke

Data (offline): scikit-learn's bundled 8×8 digits, each upsampled to 16×16 and pasted at a random
position (a multiple of 4 pixels, so the ViT's patches align with the digit) on a 24×24 canvas of
light Gaussian noise (:func:`make_data`). Every training glyph is pasted
at ``--placements`` positions, every test glyph once, so the class has to be found wherever it lies and
more than half of each image is background: a task where "where does the model look?" has an answer
to check against (the digit's box, returned for the test images).

Models: ``vit_digits`` is a ViT with 4×4 patches (a 6×6 token grid plus a class token), width 64,
6 blocks of 4 heads; ``swin_digits`` is a two-stage Swin with 2×2 patches (a 12×12 map), 3×3 windows,
widths 32 and 64, depths (2, 2), heads (2, 4), so both stages have a shifted block. Both are trained
with :func:`vitlearn.train.train_classifier` (AdamW, cosine schedule, label smoothing 0.1, no weight
decay on biases, norms, embeddings or tables).

Each model is saved as a plain ``state_dict`` (``<name>.pt``, float32, under 1.5 MB) with a JSON
sidecar (``<name>.json``): the command, seed, data, machine, the keywords that rebuild the model, the
per-epoch history and the final train and test accuracy. :func:`load` rebuilds a model offline.
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import vitlearn
from vitlearn.train import evaluate, train_classifier

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT_DIR = ROOT / "notebooks" / "checkpoints"
CANVAS, GLYPH, NOISE, STEP = 24, 16, 0.1, 4

# name -> (registered architecture, its keywords); LR holds each model's default learning rate (the
# class-token ViT stalls at chance for most of a run at 2e-3, so it gets 1e-3).
LR = {"vit_digits": 1e-3, "swin_digits": 2e-3}
MODELS = {
    "vit_digits": ("vit_tiny_patch16_224", dict(img_size=CANVAS, patch_size=4, embed_dim=64, depth=6, num_heads=4,
                                                num_classes=10)),
    "swin_digits": ("swin_tiny_patch4_window7_224", dict(img_size=CANVAS, patch_size=2, embed_dim=32, depths=[2, 2],
                                                         num_heads=[2, 4], window_size=3, num_classes=10)),
}
SHORT = {"vit": "vit_digits", "swin": "swin_digits"}


def make_data(placements: int = 4, seed: int = 0, subset: int | None = None, test_fraction: float = 0.2,
              step: int = STEP):
    """Translated digits: ``(x_train, y_train, x_test, y_test, boxes_test)``.

    Images are (n, 3, 24, 24), standardised with the training images' mean and std (one scalar each);
    ``boxes_test`` is (n_test, 2), the (top, left) pixel of each test digit's 16×16 box. The split, the
    positions and the noise come from generators seeded with ``seed``; ``subset`` keeps only the first
    ``subset`` training glyphs (smoke runs). Nothing is downloaded.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    glyphs = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0
    glyphs = F.interpolate(glyphs, size=(GLYPH, GLYPH), mode="bilinear", align_corners=False)
    labels = torch.tensor(d.target, dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(labels), generator=g)
    n_test = int(round(test_fraction * len(labels)))
    test, train = perm[:n_test], perm[n_test:]
    if subset is not None:
        train = train[:subset]

    def paste(idx: torch.Tensor, copies: int):
        idx = idx.repeat(copies)
        pos = step * torch.randint(0, (CANVAS - GLYPH) // step + 1, (len(idx), 2), generator=g)
        x = NOISE * torch.randn(len(idx), 1, CANVAS, CANVAS, generator=g)
        for i, (t, l) in enumerate(pos.tolist()):
            x[i, :, t:t + GLYPH, l:l + GLYPH] += glyphs[idx[i]]
        return x, labels[idx], pos

    x_tr, y_tr, _ = paste(train, placements)
    x_te, y_te, boxes = paste(test, 1)
    mean, std = x_tr.mean(), x_tr.std()
    x_tr, x_te = ((x - mean) / std for x in (x_tr, x_te))
    return x_tr.expand(-1, 3, -1, -1).contiguous(), y_tr, x_te.expand(-1, 3, -1, -1).contiguous(), y_te, boxes


def build(name: str, seed: int = 0) -> torch.nn.Module:
    """The untrained model ``name`` ("vit_digits" or "swin_digits"), initialised from ``seed``."""
    arch, kwargs = MODELS[name]
    torch.manual_seed(seed)
    return vitlearn.create_model(arch, **kwargs)


def load(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """Rebuilds the model from the sidecar ``path.json`` and loads ``path`` (a ``.pt``); CPU, eval mode."""
    path = Path(path)
    meta = json.loads(path.with_suffix(".json").read_text())
    model = vitlearn.create_model(meta["model"]["arch"], **meta["model"]["kwargs"])
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval(), meta


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "device": "cpu"}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["vit", "swin"], choices=sorted(SHORT))
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--placements", type=int, default=4, help="positions per training glyph")
    ap.add_argument("--subset", type=int, default=None, help="keep only this many training glyphs (smoke runs)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=None, help="learning rate (default: per model, see LR)")
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0, help="model initialisation and batch order")
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--step", type=int, default=STEP, help="digit positions are multiples of this many pixels")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    return ap.parse_args(argv)


def main(argv=None) -> tuple[dict[str, dict], dict[str, torch.nn.Module]]:
    """Trains and saves the models named by ``--models``; returns their sidecars and the trained models."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        x_tr, y_tr, x_te, y_te, _ = make_data(args.placements, args.data_seed, args.subset, step=args.step)
        data = {"name": "translated sklearn digits", "canvas": CANVAS, "glyph": GLYPH, "noise_std": NOISE,
                "placements": args.placements, "step": args.step, "data_seed": args.data_seed, "subset": args.subset,
                "n_train": len(y_tr), "n_test": len(y_te), "function": "scripts/train_chapter_models_12.py:make_data"}
        metas, models = {}, {}
        for short in args.models:
            name = SHORT[short]
            model = build(name, args.seed)
            lr = args.lr or LR[name]
            t0 = time.perf_counter()
            hist = train_classifier(model, x_tr, y_tr, x_te, y_te, seed=args.seed, epochs=args.epochs,
                                    batch_size=args.batch_size, lr=lr, weight_decay=args.weight_decay,
                                    label_smoothing=args.label_smoothing)
            seconds = time.perf_counter() - t0
            arch, kwargs = MODELS[name]
            meta = {
                "command": shlex.join(["python", "scripts/train_chapter_models_12.py", *argv]),
                "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "seed": args.seed,
                "model": {"arch": arch, "kwargs": kwargs, "params": vitlearn.count_parameters(model)},
                "data": data,
                "training": {"function": "vitlearn.train.train_classifier", "epochs": args.epochs,
                             "batch_size": args.batch_size, "lr": lr, "weight_decay": args.weight_decay,
                             "label_smoothing": args.label_smoothing},
                "machine": machine(),
                "seconds": round(seconds, 1),
                "history": {"train_loss": [round(v, 5) for v in hist["loss"]], "test_acc": hist["test_acc"]},
                "final_test_acc": hist["test_acc"][-1],
                "final_train_acc": evaluate(model, x_tr, y_tr),
            }
            args.out_dir.mkdir(parents=True, exist_ok=True)
            out = args.out_dir / f"{name}.pt"
            torch.save(model.state_dict(), out)
            out.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
            print(f"wrote {out}: test {100 * meta['final_test_acc']:.1f}%, train {100 * meta['final_train_acc']:.1f}%, "
                  f"{seconds:.0f} s", flush=True)
            metas[name], models[name] = meta, model
    finally:
        torch.set_num_threads(threads)  # a caller (a test) keeps its own setting
    return metas, models


if __name__ == "__main__":
    main()
