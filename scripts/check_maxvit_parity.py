"""Full-size timm parity of every registered MaxViT variant (too slow for the test suite).

    PYTHONPATH=$PWD python scripts/check_maxvit_parity.py [--batch 2] [--models maxvit_tiny_tf_224 ...]

For each variant, timm's ``maxvit_*_tf_*`` model is built at its real size and depth, every weight
and buffer is randomised (``vitlearn.utils.randomize_``, std 0.1; BatchNorm running variances in
[0.5, 1.5)), it is converted with ``vitlearn.from_timm`` and both models run in eval mode on the
same random batch; the relative error max|Δlogit| / max|logit| must stay below 1e-5. Prints one
Markdown row per model as it finishes (the tests check T-224 at full size and the other widths at a
reduced size and depth, tests/test_maxvit.py).

Measured on the 2-core CPU machine, batch 2, float32 (timm 1.0.31, torch 2.14.1):

(table filled in from the run, see the report)
"""
from __future__ import annotations

import argparse
import sys
import time

import timm
import torch

import vitlearn
from vitlearn.utils import randomize_

ORDER = ["maxvit_tiny_tf_224", "maxvit_small_tf_224", "maxvit_base_tf_224", "maxvit_large_tf_224",
         "maxvit_tiny_tf_384", "maxvit_small_tf_384", "maxvit_tiny_tf_512", "maxvit_base_tf_384",
         "maxvit_small_tf_512", "maxvit_large_tf_384", "maxvit_base_tf_512", "maxvit_xlarge_tf_384",
         "maxvit_large_tf_512", "maxvit_xlarge_tf_512"]


def check(name: str, batch: int, tol: float) -> tuple[float, float]:
    start = time.time()
    torch.manual_seed(0)
    tm = randomize_(timm.create_model(name)).eval()
    model = vitlearn.from_timm(tm)
    x = torch.randn(batch, 3, *tm.img_size)
    with torch.inference_mode():
        ref = tm(x)
        del tm
        out = model(x)
    err = ((ref - out).abs().max() / ref.abs().max()).item()
    return err, time.time() - start


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=ORDER)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--tol", type=float, default=1e-5)
    args = ap.parse_args(argv)
    missing = set(args.models) - set(vitlearn.list_models("maxvit_*"))
    if missing:
        ap.error(f"not registered: {sorted(missing)}")
    print(f"| model | img | max|Δ|/max|ref| (batch {args.batch}) | < {args.tol:.0e} | seconds |")
    print("|---|---|---|---|---|", flush=True)
    failed = 0
    for name in args.models:
        err, secs = check(name, args.batch, args.tol)
        ok = err < args.tol
        failed += not ok
        print(f"| {name} | {name.rsplit('_', 1)[1]} | {err:.2e} | {'yes' if ok else 'NO'} | {secs:.0f} |", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
