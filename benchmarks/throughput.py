"""Inference throughput of vitlearn against timm, same weights, same inputs, same run.

    python benchmarks/throughput.py                      # defaults: a few models, batch 8, CPU or GPU
    python benchmarks/throughput.py --models vit_base_patch16_224 swin_tiny_patch4_window7_224 \
        --batch-size 64 --amp bf16 --compile

For each model that both libraries have, timm's model is built, vitlearn's is converted from it
(`vitlearn.from_timm`) after every weight and buffer of timm's model is randomised
(`vitlearn.utils.randomize_`, so the logit check cannot pass by accident), and the two are timed
alternately, several rounds. Prints a ratio table (vitlearn / timm images per second from the medians,
above 1 means vitlearn is faster; the spread is the min–max of the per-round ratios) and writes JSON to
benchmarks/results/ with the command, machine and versions.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import timm
import torch

import vitlearn
from vitlearn.utils import randomize_

DEFAULT_MODELS = ["vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224",
                  "swin_tiny_patch4_window7_224", "cait_xxs24_224", "cait_s24_224"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
    elif device.type == "mps":
        torch.mps.synchronize()


def time_model(model, x, amp_dtype, iters: int) -> float:
    """Seconds per batch (mean over ``iters``)."""
    with torch.inference_mode(), torch.autocast(x.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        sync(x.device)
        start = time.perf_counter()
        for _ in range(iters):
            model(x)
        sync(x.device)
    return (time.perf_counter() - start) / iters


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--amp", choices=["none", "bf16", "fp16"], default="none")
    ap.add_argument("--compile", action="store_true", help="torch.compile both models")
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", default=None, help="JSON results path (default benchmarks/results/throughput-<device>.json)")
    args = ap.parse_args(argv)

    device = torch.device(args.device) if args.device else vitlearn.get_device()
    amp_dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.amp]
    torch.manual_seed(0)
    rows = []
    for name in args.models:
        if name not in vitlearn.list_models() or not timm.is_model(name):
            print(f"skip {name}: not in both vitlearn and timm", file=sys.stderr)
            continue
        tm = randomize_(timm.create_model(name)).to(device).eval()
        vm = vitlearn.from_timm(tm).to(device).eval()
        x = torch.randn(args.batch_size, 3, *tm.pretrained_cfg["input_size"][1:], device=device)
        with torch.inference_mode():
            err = ((tm(x) - vm(x)).abs().max() / tm(x).abs().max()).item()
        if args.compile:
            tm, vm = torch.compile(tm), torch.compile(vm)
        for m in (tm, vm):                          # warm-up (and compilation)
            time_model(m, x, amp_dtype, 2)
        t_timm, t_ours = [], []
        for _ in range(args.rounds):                # alternate, so drifts in clock or load hit both
            t_timm.append(time_model(tm, x, amp_dtype, args.iters))
            t_ours.append(time_model(vm, x, amp_dtype, args.iters))
        ips_timm = args.batch_size / statistics.median(t_timm)
        ips_ours = args.batch_size / statistics.median(t_ours)
        per_round = [a / b for a, b in zip(t_timm, t_ours)]
        rows.append(dict(model=name, timm_img_s=round(ips_timm, 2), vitlearn_img_s=round(ips_ours, 2),
                         ratio=round(ips_ours / ips_timm, 3), ratio_min=round(min(per_round), 3),
                         ratio_max=round(max(per_round), 3), rel_logit_err=err))
        print(f"{name:34s} timm {ips_timm:9.1f} img/s   vitlearn {ips_ours:9.1f} img/s   ratio {ips_ours / ips_timm:5.2f} "
              f"({min(per_round):.2f}–{max(per_round):.2f})", flush=True)

    print("\n| model | timm img/s | vitlearn img/s | vitlearn / timm | per-round min–max |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['timm_img_s']} | {r['vitlearn_img_s']} | {r['ratio']} | {r['ratio_min']}–{r['ratio_max']} |")
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    result = dict(command=" ".join(["python"] + sys.argv), seed=0, device=str(device), machine=machine,
                  threads=torch.get_num_threads(), torch=torch.__version__, timm=timm.__version__,
                  vitlearn=vitlearn.__version__, batch_size=args.batch_size, amp=args.amp, compile=args.compile,
                  rows=rows)
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / f"throughput-{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
