"""Deep, narrow ViTs trained briefly with four ways of scaling the residual branches (chapter 6).

    python scripts/layerscale_depth.py                     # the book's run: notebooks/results/layerscale_depth.json
    python scripts/layerscale_depth.py --depth 4 --steps 5 --seeds 0 --out /tmp/smoke.json   # smoke test

Every run is ``vitlearn.create_model("vit_tiny_patch16_224", ...)`` with ``--depth`` pre-norm blocks
of width 64 (4 heads) on scikit-learn's bundled digits (16×16, 4×4 patches: 16 tokens + a class
token), trained with AdamW (constant learning rate ``--lr`` after a short linear warm-up, no weight
decay on biases, norms, embeddings or scales, batch 32) for ``--steps`` steps. Only the residual
branches differ (``SCHEMES``):

- ``none``: x + f(LN(x)), the plain pre-norm block;
- ``scalar (ReZero/SkipInit)``: x + α·f(LN(x)), one learned scalar per branch starting at 0 (ReZero
  and SkipInit both start a residual branch at zero with a scalar; they are written without
  LayerNorm, we keep the pre-norm block, so this is our reading of the idea inside a ViT);
- ``zero last layer (Fixup-style)``: the last linear map of every branch (``attn.proj``,
  ``mlp.fc2``) initialised to zero: Fixup's zero-initialisation of each branch's last layer, without
  its other rescalings and without removing the norms (our reading);
- ``LayerScale``: x + diag(γ)·f(LN(x)), γ per channel starting at ``--eps`` (CaiT's rule for 24
  blocks gives 1e-5).

It records the training loss every step, the test accuracy at the end, and the gradient norm of
each block's parameters averaged over the first ``--grad-steps`` steps. Writes a JSON file with the
command, seeds, machine and all numbers; the notebook plots it.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import shlex
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

import vitlearn
from vitlearn.data import digits
from vitlearn.train import param_groups

SCHEMES = ["none", "scalar (ReZero/SkipInit)", "zero last layer (Fixup-style)", "LayerScale"]


class ScalarGate(nn.Module):
    """α · x with one learned scalar α starting at 0 (ReZero / SkipInit)."""

    def __init__(self):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return self.alpha * x


def build(scheme: str, depth: int, eps: float, in_chans: int) -> nn.Module:
    model = vitlearn.create_model("vit_tiny_patch16_224", img_size=16, patch_size=4, in_chans=in_chans,
                                  embed_dim=64, depth=depth, num_heads=4, num_classes=10,
                                  init_values=eps if scheme == "LayerScale" else None)
    for blk in model.blocks:
        if scheme.startswith("scalar"):
            blk.ls1, blk.ls2 = ScalarGate(), ScalarGate()
        elif scheme.startswith("zero last"):
            for lin in (blk.attn.proj, blk.mlp.fc2):
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)
    return model


def run(scheme: str, seed: int, args, data) -> dict:
    x_tr, y_tr, x_te, y_te = data
    torch.manual_seed(seed)
    model = build(scheme, args.depth, args.eps, x_tr.shape[1])
    opt = torch.optim.AdamW(param_groups(model, args.weight_decay), lr=args.lr)
    warmup = max(1, args.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))
    g = torch.Generator().manual_seed(seed)
    losses, grad_norms = [], torch.zeros(args.depth)
    perm, pos = torch.randperm(len(y_tr), generator=g), 0
    start = time.perf_counter()
    model.train()
    for step in range(args.steps):
        if pos + args.batch_size > len(perm):
            perm, pos = torch.randperm(len(y_tr), generator=g), 0
        idx = perm[pos:pos + args.batch_size]
        pos += args.batch_size
        loss = F.cross_entropy(model(x_tr[idx]), y_tr[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if step < args.grad_steps:
            for i, blk in enumerate(model.blocks):
                grad_norms[i] += torch.sqrt(sum((p.grad ** 2).sum() for p in blk.parameters() if p.grad is not None)).item()
        opt.step()
        sched.step()
        losses.append(loss.item() if math.isfinite(loss.item()) else float("nan"))
    model.eval()
    with torch.no_grad():
        acc = (model(x_te).argmax(-1) == y_te).float().mean().item()
    return dict(scheme=scheme, seed=seed, loss=[round(v, 5) for v in losses], test_acc=acc,
                grad_norm_per_block=[round(v / min(args.grad_steps, args.steps), 6) for v in grad_norms.tolist()],
                seconds=round(time.perf_counter() - start, 1))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--depth", type=int, default=24)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--eps", type=float, default=1e-5, help="LayerScale initialisation")
    p.add_argument("--grad-steps", type=int, default=20, help="steps over which block gradient norms are averaged")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--schemes", nargs="+", default=SCHEMES, choices=SCHEMES)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "notebooks/results/layerscale_depth.json")
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    data = digits(size=16)
    result = dict(
        command="python " + " ".join(shlex.quote(a) for a in [sys.argv[0]] + (argv if argv is not None else sys.argv[1:])),
        date=datetime.date.today().isoformat(), machine=f"{platform.machine()} {platform.processor() or ''}".strip(),
        threads=torch.get_num_threads(), torch=torch.__version__,
        config={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        data="scikit-learn digits, 16x16, 1438 train / 359 test (vitlearn.data.digits)", runs=[],
    )
    for scheme in args.schemes:
        for seed in args.seeds:
            r = run(scheme, seed, args, data)
            result["runs"].append(r)
            print(f"{scheme:32s} seed {seed}: final loss {r['loss'][-1]:.3f}, test acc {r['test_acc']:.3f} ({r['seconds']} s)", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
