"""Full-size timm parity of every registered MaxViT variant (too slow for the test suite).

    PYTHONPATH=$PWD python scripts/check_maxvit_parity.py [--batch 2] [--models maxvit_tiny_tf_224 ...]

For each variant, timm's ``maxvit_*_tf_*`` model is built at its real size and depth, every weight
and buffer is randomised (``vitlearn.utils.randomize_``, std 0.1; BatchNorm running variances in
[0.5, 1.5)), it is converted with ``vitlearn.from_timm`` and both models run in eval mode on the
same random batch; the relative error max|Δlogit| / max|logit| must stay below 1e-5. Prints one
Markdown row per model as it finishes (the tests check T-224 at full size and the other widths at a
reduced size and depth, tests/test_maxvit.py).

Columns: the float32 error; timm's own float32 logits against its float64 logits (the float32 noise
floor of the randomised network: deep stacks with std-0.1 weights amplify rounding, chaotically for
B and L); both models in float64. Pass: the float64 error below 1e-7 where it is run (there the
float32 column is information: where timm's own float32 logits are off by 1e-1, no implementation's
float32 logits can match them to 1e-5), else the float32 error below ``--tol`` (1e-5).

Measured on the 2-core CPU machine (idle at the time), timm 1.0.31, torch 2.14.1, batch 2, full size:

| model | img | P = G | float32 | timm fp32 vs fp64 | float64 | seconds |
|---|---|---|---|---|---|---|
| maxvit_tiny_tf_224 | 224 | 7 | 2.16e-06 | 1.86e-06 | 3.88e-15 | 4 |
| maxvit_small_tf_224 | 224 | 7 | 2.38e-05 | 3.10e-05 | 6.77e-14 | 6 |
| maxvit_base_tf_224 | 224 | 7 | 1.03e-01 | 9.27e-02 | 3.26e-11 | 10 |
| maxvit_large_tf_224 | 224 | 7 | 1.52e-01 | 1.52e-01 | 4.83e-12 | 17 |
| maxvit_tiny_tf_384 | 384 | 12 | 1.62e-06 | 2.05e-06 | 2.64e-15 | 7 |
| maxvit_small_tf_384 | 384 | 12 | 3.72e-06 | 5.67e-06 | 9.86e-15 | 12 |
| maxvit_tiny_tf_512 | 512 | 16 | 3.15e-06 | 2.40e-06 | 2.22e-15 | 14 |
| maxvit_base_tf_384 | 384 | 12 | 2.52e-02 | 2.78e-02 | 2.93e-12 | 24 |
| maxvit_small_tf_512 | 512 | 16 | 1.63e-05 | 2.01e-05 | 2.11e-14 | 28 |
| maxvit_large_tf_384 | 384 | 12 | 6.17e-01 | 1.26e+00 | 4.23e-10 | 37 |
| maxvit_base_tf_512 | 512 | 16 | 1.09e-02 | 4.24e-03 | 2.44e-12 | 49 |
| maxvit_large_tf_512 | 512 | 16 | 1.11e-01 | 1.12e-01 | 5.03e-12 | 74 |
| maxvit_xlarge_tf_384 | 384 | 12 | 1.06e+00 | 1.16e+00 | 1.21e-09 | 74 |
| maxvit_xlarge_tf_512 | 512 | 16 | 1.24e+00 | 1.06e+00 | 3.56e-11 | 126 |

``--img-size 64`` (real widths, heads and full depth; P = G = 2):

| model | img | P = G | float32 | timm fp32 vs fp64 | float64 |
|---|---|---|---|---|---|
| maxvit_tiny_tf_224 | 64 | 2 | 1.82e-06 | 1.59e-06 | 3.18e-15 |
| maxvit_small_tf_224 | 64 | 2 | 1.08e-05 | 7.11e-06 | 4.31e-14 |
| maxvit_base_tf_224 | 64 | 2 | 1.81e-01 | 8.91e-02 | 1.27e-09 |
| maxvit_large_tf_224 | 64 | 2 | 6.51e-01 | 6.00e-01 | 5.50e-09 |

The partition sizes 12 and 16 (384, 512) and one block per stage of every width are in
tests/test_maxvit.py (all below 1e-5 in float32).
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


def _rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    return ((a.double() - ref.double()).abs().max() / ref.double().abs().max()).item()


def check(name: str, batch: int, img_size: int | None, fp64: bool) -> dict:
    """float32 error of vitlearn against timm, timm's own float32 error against its float64 result
    (the noise floor of the randomised network), and, with ``fp64``, the error with both in float64."""
    start = time.time()
    torch.manual_seed(0)
    kwargs = {} if img_size is None else dict(img_size=img_size)
    tm = randomize_(timm.create_model(name, **kwargs)).eval()
    model = vitlearn.from_timm(tm)
    x = torch.randn(batch, 3, *tm.img_size)
    row = dict(model=name, img=tm.img_size[0], window=model.window_size[0])
    with torch.inference_mode():
        ref = tm(x)
        row["fp32"] = _rel(model(x), ref)
        if fp64:
            ref64 = tm.double()(x.double())
            row["timm_fp32_vs_fp64"] = _rel(ref, ref64)
            row["fp64"] = _rel(model.double()(x.double()), ref64)
    row["seconds"] = time.time() - start
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=ORDER)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--img-size", type=int, default=None, help="override every model's input size (its P = G = img/32)")
    ap.add_argument("--no-fp64", action="store_true", help="skip the float64 runs (they need twice the memory)")
    args = ap.parse_args(argv)
    missing = set(args.models) - set(vitlearn.list_models("maxvit_*")) - {"maxvit_xlarge_tf_224"}
    if missing:
        ap.error(f"not registered: {sorted(missing)}")
    print(f"| model | img | P = G | float32 max|Δ|/max|ref| (batch {args.batch}) | timm float32 vs its float64 "
          f"| float64 max|Δ|/max|ref| | seconds |")
    print("|---|---|---|---|---|---|---|", flush=True)
    failed = 0
    for name in args.models:
        r = check(name, args.batch, args.img_size, not args.no_fp64)
        # With the float64 run, it decides (float32 logits of deep randomised stacks are dominated by
        # amplified rounding, timm's own included); without it, float32 must meet the tolerance.
        ok = r["fp64"] < 1e-7 if "fp64" in r else r["fp32"] < args.tol
        failed += not ok
        f64 = lambda k: f"{r[k]:.2e}" if k in r else "–"  # noqa: E731
        print(f"| {name} | {r['img']} | {r['window']} | {r['fp32']:.2e} | {f64('timm_fp32_vs_fp64')} | {f64('fp64')} "
              f"| {r['seconds']:.0f} |{'' if ok else ' FAIL'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
