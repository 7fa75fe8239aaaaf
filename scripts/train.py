r"""Train a vitlearn model on an image folder, on one device or many (torchrun), with exact resumption.

One GPU or the CPU:

    python scripts/train.py --model vit_small_patch16_224 --data /data/imagenette --epochs 30 \
        --batch-size 128 --lr 5e-4 --warmup 2 --amp bf16 --out runs/vit_s

All GPUs of one machine (the same script, unchanged; --batch-size is per process):

    torchrun --nproc_per_node 8 scripts/train.py --model vit_small_patch16_224 --data /data/imagenette ...

Two machines of 8 GPUs each (run this on both; HOST:PORT is reachable from both, e.g. the first one):

    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint HOST:29500 \
        --rdzv_id myrun scripts/train.py --model vit_small_patch16_224 --data /data/imagenette ...

Add --resume to continue a stopped run from --out/checkpoint.pt: the rest of the run is the one an
uninterrupted run would have computed (same world size and batch size required).

--data is a directory with train/ and val/ subfolders of one folder per class (torchvision's
ImageFolder), or ``synthetic`` for random images (a smoke test: --synthetic-size examples, 4 classes).
Training images get RandomResizedCrop and a horizontal flip, validation images a resize and a centre
crop; both are normalised with the ImageNet mean and standard deviation.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import vitlearn  # noqa: E402
from vitlearn.train import Trainer  # noqa: E402

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def build_data(args):
    if args.data == "synthetic":
        g = torch.Generator().manual_seed(1234)
        n = args.synthetic_size
        x = torch.randn(2 * n, 3, args.img_size, args.img_size, generator=g)
        y = torch.randint(0, 4, (2 * n,), generator=g)
        ds = torch.utils.data.TensorDataset
        return ds(x[:n], y[:n]), ds(x[n:], y[n:]), 4
    from torchvision import datasets, transforms
    root = Path(args.data)
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise FileNotFoundError(f"--data {root}: expected a {split}/ subfolder (one folder per class inside)")
    norm = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    train_tf = transforms.Compose([transforms.RandomResizedCrop(args.img_size), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), norm])
    val_tf = transforms.Compose([transforms.Resize(round(args.img_size * 256 / 224)),
                                 transforms.CenterCrop(args.img_size), transforms.ToTensor(), norm])
    train_ds = datasets.ImageFolder(root / "train", train_tf)
    val_ds = datasets.ImageFolder(root / "val", val_tf)
    if train_ds.classes != val_ds.classes:
        raise ValueError(f"train/ and val/ have different class folders: {train_ds.classes} vs {val_ds.classes}")
    return train_ds, val_ds, len(train_ds.classes)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a name from vitlearn.list_models()")
    ap.add_argument("--model-args", default="{}", help='JSON keyword overrides, e.g. \'{"drop_path_rate": 0.1}\'')
    ap.add_argument("--data", required=True, help="ImageFolder root with train/ and val/, or 'synthetic'")
    ap.add_argument("--synthetic-size", type=int, default=64)
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--epochs", type=int, required=True)
    ap.add_argument("--batch-size", type=int, default=64, help="per process; the global batch is this × processes")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--warmup", type=float, default=0.0, help="warm-up epochs (may be fractional)")
    ap.add_argument("--min-lr-ratio", type=float, default=0.0)
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--amp", choices=["none", "bf16", "fp16"], default="none")
    ap.add_argument("--grad-clip", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--out", default=None, help="directory for checkpoint.pt, log.csv, log.json")
    ap.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt if it exists")
    ap.add_argument("--stop-after", type=int, default=None, help="stop after this epoch (resume later)")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--device", default=None)
    return ap.parse_args(argv)


def main(argv=None) -> Trainer:
    args = parse_args(argv)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed and not dist.is_initialized():
        if torch.cuda.is_available() and args.device != "cpu":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
            dist.init_process_group("nccl")
        else:
            dist.init_process_group("gloo")
    try:
        train_ds, val_ds, num_classes = build_data(args)
        vitlearn.seed_everything(args.seed)      # the same initial weights on every process
        model = vitlearn.create_model(args.model, num_classes=num_classes, img_size=args.img_size,
                                      **json.loads(args.model_args))
        trainer = Trainer(model, train_ds, val_ds, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                          weight_decay=args.weight_decay, warmup=args.warmup, min_lr_ratio=args.min_lr_ratio,
                          label_smoothing=args.label_smoothing, amp=None if args.amp == "none" else args.amp,
                          grad_clip=args.grad_clip, seed=args.seed, out_dir=args.out,
                          resume=args.resume and args.out is not None, progress=not args.no_progress,
                          num_workers=args.workers, compile=args.compile, device=args.device)
        trainer.fit(stop_after=args.stop_after)
        return trainer
    finally:
        if distributed and dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
