"""A small ablation of ViT-LSLA's attention: MSA → LSA → +DS → +B_i → +B_o, trained briefly on offline data.

    python scripts/lsla_ablation.py                       # the book's run: writes notebooks/results/lsla_ablation.json
    python scripts/lsla_ablation.py --epochs 1 --subset 128 --seeds 0 --variants MSA LSA --out /tmp/smoke.json

Every variant is ``vitlearn.create_model("vit_lsla_tiny", ...)`` with the same convolutional stem,
hierarchy (32×32 input → 8×8 tokens; stage 1: 2 blocks, 2 heads, four 4×4 windows, the second block
shifted; patch merging; stage 2: 2 blocks, 4 heads, one 4×4 window) and training recipe
(:func:`vitlearn.train.train_classifier`: AdamW, cosine schedule, label smoothing); only the
attention's switches differ (see ``VARIANTS``). Each variant is trained for every seed in
``--seeds``; the seed fixes the initialisation (``torch.manual_seed(seed)`` right before the model
is built, which also drives drop-path) and the shuffling. The data, the same for every run, are
:func:`vitlearn.data.translated_digits` (scikit-learn's 1,797 bundled 8×8 digits, upsampled to
16×16 and pasted at a random position on a noisy 32×32 canvas; 1,438 train / 359 test), so nothing
is downloaded; ``--data centred`` uses :func:`vitlearn.data.digits` at 32×32 instead.

Cost: with the defaults (6 variants × 3 seeds × 30 epochs, ≈1.6 s per epoch) about 15 minutes on an
otherwise idle 2-core CPU; the run in notebooks/results/ took 22 minutes while notebooks were executed
alongside (the JSON records the seconds of each run). A smoke run (``--epochs 1 --subset 128 --seeds 0``, two variants) takes a few seconds.

What it measures, and what it does not: test accuracy of 0.26–0.31 M-parameter models (7–8.5 M MACs) on 359 test images
after a short training, mean ± std over seeds. Differences smaller than a couple of standard
deviations (sample std over seeds) are noise; the data set is tiny and the models are far from the paper's ImageNet-scale
setting, so the table says how the switches behave in this regime, not which variant is better at
scale. "best" accuracy is the maximum over epochs of the *test* accuracy (selected on the test set,
hence optimistic); "final" is the accuracy after the last epoch, the number to compare.

The JSON holds the command, seeds, all hyper-parameters, the data description, the machine, the
date, one row per (variant, seed) with per-epoch curves, and per-variant summaries. It is rewritten
after every run (``"complete": false`` until the last one), so a long run can be watched.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

import vitlearn
from vitlearn.data import digits, translated_digits
from vitlearn.train import train_classifier

_OFF = dict(k_is_x=False, v_is_x=False, dynamic_scale=False, inner_bias=False, outer_bias=False)

# Cumulative: each LSA row adds one switch to the row before it; "MSA + B_i" is Swin's attention.
VARIANTS: dict[str, dict] = {
    "MSA": dict(_OFF),
    "MSA + B_i (Swin)": {**_OFF, "inner_bias": True},
    "LSA": {**_OFF, "k_is_x": True, "v_is_x": True},
    "LSA + DS": {**_OFF, "k_is_x": True, "v_is_x": True, "dynamic_scale": True},
    "LSA + DS + B_i": {**_OFF, "k_is_x": True, "v_is_x": True, "dynamic_scale": True, "inner_bias": True},
    "LSA + DS + B_i + B_o (LSLA)": {**_OFF, "k_is_x": True, "v_is_x": True, "dynamic_scale": True,
                                    "inner_bias": True, "outer_bias": True, "outer_bias_mode": "add"},
}

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "notebooks" / "results" / "lsla_ablation.json"


def model_config(args: argparse.Namespace) -> dict:
    """The keywords shared by every variant (everything but the attention's switches)."""
    return dict(img_size=args.img_size, embed_dim=args.embed_dim, depths=tuple(args.depths),
                num_heads=tuple(args.num_heads), window_size=args.window_size, num_classes=10,
                drop_path_rate=args.drop_path_rate, conv_stem=True)


def build(variant: str, args: argparse.Namespace, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return vitlearn.create_model("vit_lsla_tiny", **model_config(args), **VARIANTS[variant])


def load_data(args: argparse.Namespace):
    if args.data == "translated":
        x_tr, y_tr, x_te, y_te = translated_digits(canvas=args.img_size, digit_size=args.digit_size,
                                                   seed=args.data_seed)
        desc = (f"vitlearn.data.translated_digits(canvas={args.img_size}, digit_size={args.digit_size}, "
                f"seed={args.data_seed}): scikit-learn's bundled 8x8 digits upsampled to {args.digit_size}x"
                f"{args.digit_size}, pasted at a random position on a {args.img_size}x{args.img_size} "
                f"canvas of Gaussian noise (std 0.1), 3 channels, standardised")
    else:
        x_tr, y_tr, x_te, y_te = digits(size=args.img_size, seed=args.data_seed)
        desc = (f"vitlearn.data.digits(size={args.img_size}, seed={args.data_seed}): scikit-learn's bundled "
                f"8x8 digits, centred, upsampled to {args.img_size}x{args.img_size}, 3 channels, standardised")
    if args.subset is not None:
        x_tr, y_tr = x_tr[:args.subset], y_tr[:args.subset]
        desc += f"; only the first {len(y_tr)} training images (--subset)"
    return (x_tr, y_tr, x_te, y_te), {"description": desc, "name": args.data, "n_train": len(y_tr),
                                      "n_test": len(y_te), "data_seed": args.data_seed}


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "device": "cpu"}


def summarise(rows: list[dict], variants: list[str]) -> dict:
    out = {}
    for v in variants:
        rs = [r for r in rows if r["variant"] == v]
        if not rs:
            continue
        final = [r["final_test_acc"] for r in rs]
        best = [r["best_test_acc"] for r in rs]
        out[v] = {"n_seeds": len(rs), "final_acc_mean": statistics.fmean(final),
                  "final_acc_std": statistics.stdev(final) if len(final) > 1 else 0.0,
                  "best_acc_mean": statistics.fmean(best),
                  "final_loss_mean": statistics.fmean(r["final_train_loss"] for r in rs),
                  "params": rs[0]["params"], "macs": rs[0]["macs"],
                  "seconds_mean": statistics.fmean(r["seconds"] for r in rs)}
    return out


def print_table(summary: dict) -> None:
    w = max(len(v) for v in summary) if summary else 10
    print(f"\n{'variant':<{w}}  {'params':>8}  {'MACs':>10}  {'final acc (mean ± std)':>23}  {'best acc':>8}  {'s/run':>6}")
    for v, s in summary.items():
        acc = f"{100 * s['final_acc_mean']:.1f} ± {100 * s['final_acc_std']:.1f} %"
        print(f"{v:<{w}}  {s['params']:>8,}  {s['macs']:>10,}  {acc:>23}  {100 * s['best_acc_mean']:>7.1f}%  "
              f"{s['seconds_mean']:>6.1f}")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--subset", type=int, default=None, help="use only the first N training images (smoke runs)")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="NAME",
                    help=f"variants to run, by name (quote them): {', '.join(map(repr, VARIANTS))}")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--data", choices=["translated", "centred"], default="translated")
    ap.add_argument("--data-seed", type=int, default=0, help="seed of the data (positions, noise, split); fixed across runs")
    ap.add_argument("--img-size", type=int, default=32)
    ap.add_argument("--digit-size", type=int, default=16)
    ap.add_argument("--embed-dim", type=int, default=48)
    ap.add_argument("--depths", type=int, nargs="+", default=[2, 2])
    ap.add_argument("--num-heads", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--window-size", type=int, default=4)
    ap.add_argument("--drop-path-rate", type=float, default=0.1)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: PyTorch's choice)")
    return ap.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    command = shlex.join([Path(sys.executable).name, "scripts/lsla_ablation.py",
                          *(sys.argv[1:] if argv is None else argv)])
    variants = list(dict.fromkeys(args.variants))
    data, data_info = load_data(args)
    x_tr, y_tr, x_te, y_te = data
    train_kw = dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                    label_smoothing=args.label_smoothing)
    result = {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seeds": args.seeds,
        "epochs": args.epochs,
        "variants": {v: VARIANTS[v] for v in variants},
        "model": {"name": "vit_lsla_tiny", **model_config(args)},
        "training": {"function": "vitlearn.train.train_classifier (AdamW, linear warm-up + cosine, label smoothing)",
                     **train_kw},
        "data": data_info,
        "machine": machine(),
        "notes": ("final_test_acc: after the last epoch (the number to compare); best_test_acc: maximum over "
                  "epochs of the test accuracy, selected on the test set, hence optimistic. seconds: wall time "
                  "of training + per-epoch evaluation, on a possibly shared machine."),
        "complete": False,
        "rows": [],
        "summary": {},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def write() -> None:
        result["summary"] = summarise(result["rows"], variants)
        tmp = args.out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(result, indent=1) + "\n")
        tmp.replace(args.out)

    start = time.perf_counter()
    for v in variants:
        for seed in args.seeds:
            model = build(v, args, seed)
            params = vitlearn.count_parameters(model)
            macs = vitlearn.count_macs(model, (3, args.img_size, args.img_size))
            t0 = time.perf_counter()
            hist = train_classifier(model, x_tr, y_tr, x_te, y_te, seed=seed, **train_kw)
            seconds = time.perf_counter() - t0
            row = {"variant": v, "seed": seed, "final_test_acc": hist["test_acc"][-1],
                   "best_test_acc": max(hist["test_acc"]), "final_train_loss": hist["loss"][-1],
                   "params": params, "macs": macs, "seconds": round(seconds, 2),
                   "test_acc": hist["test_acc"], "train_loss": [round(l, 5) for l in hist["loss"]]}
            result["rows"].append(row)
            write()
            print(f"{v:<28} seed {seed}: final {100 * row['final_test_acc']:5.1f}%  best "
                  f"{100 * row['best_test_acc']:5.1f}%  loss {row['final_train_loss']:.3f}  {seconds:6.1f} s",
                  flush=True)
    result["total_seconds"] = round(time.perf_counter() - start, 1)
    result["complete"] = True
    write()
    print_table(result["summary"])
    print(f"\nwrote {args.out} ({result['total_seconds']:.0f} s)")
    return result


if __name__ == "__main__":
    main()
