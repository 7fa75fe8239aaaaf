"""Trains the small ViT-LSLA that chapters 3 and 4 inspect, and saves it with a JSON sidecar.

    python scripts/train_chapter_models_34.py            # writes notebooks/checkpoints/vit_lsla_digits.{pt,json}
    python scripts/train_chapter_models_34.py --epochs 1 --placements 1 --subset 128 --out /tmp/smoke.pt

The model and data are those of the full-LSLA variant of ``scripts/lsla_ablation.py`` (same
``model_config``, same ``translated_digits`` task: 24×24 noisy canvas, 12×12 digit at a random
position, 6×6 tokens, 3×3 windows; by default 6 placements per training glyph), trained with
:func:`vitlearn.train.train_classifier` for ``--epochs`` epochs (default 16). Every other option is
``lsla_ablation.py``'s. The checkpoint is a plain ``state_dict`` (float32, a few hundred kB); the
sidecar records the command, seed, data, machine, the keywords that rebuild the model, the
per-epoch history and the final train/test accuracy. Load it with :func:`load`.
"""
from __future__ import annotations

import datetime
import importlib.util
import json
import shlex
import sys
import time
from pathlib import Path

import torch

import vitlearn
from vitlearn.train import evaluate, train_classifier

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "notebooks" / "checkpoints" / "vit_lsla_digits.pt"
VARIANT = "LSA + DS + B_i + B_o (LSLA)"
DEFAULTS = ["--epochs", "16", "--placements", "6"]


def _ablation():
    spec = importlib.util.spec_from_file_location("lsla_ablation", ROOT / "scripts" / "lsla_ablation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load(path: str | Path = DEFAULT_OUT) -> tuple[torch.nn.Module, dict]:
    """Rebuilds the model from the sidecar's keywords and loads the weights (offline, CPU, eval mode)."""
    path = Path(path)
    meta = json.loads(path.with_suffix(".json").read_text())
    model = vitlearn.create_model(meta["model"]["name"], **meta["model"]["kwargs"])
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval(), meta


def main(argv=None) -> dict:
    abl = _ablation()
    ap_args = list(sys.argv[1:] if argv is None else argv)
    out = DEFAULT_OUT
    if "--out" in ap_args:  # our own --out (a .pt path); the rest are lsla_ablation's options
        i = ap_args.index("--out")
        out = Path(ap_args[i + 1])
        del ap_args[i:i + 2]
    seed = 0
    # This script's own defaults (16 epochs, 6 placements: longer than an ablation run, as the one model
    # the chapters inspect); options given on the command line override them.
    args = abl.parse_args([*DEFAULTS, *ap_args, "--seeds", str(seed), "--variants", VARIANT])
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        (x_tr, y_tr, x_te, y_te), data_info = abl.load_data(args)
        model = abl.build(VARIANT, args, seed)
        t0 = time.perf_counter()
        hist = train_classifier(model, x_tr, y_tr, x_te, y_te, seed=seed, epochs=args.epochs,
                                batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                                label_smoothing=args.label_smoothing)
        seconds = time.perf_counter() - t0
        train_acc = evaluate(model, x_tr, y_tr)
    finally:
        torch.set_num_threads(threads)  # a caller (a test) keeps its own setting
    kwargs = {**abl.model_config(args), **abl.VARIANTS[VARIANT]}
    kwargs["depths"], kwargs["num_heads"] = list(kwargs["depths"]), list(kwargs["num_heads"])
    meta = {
        "command": shlex.join(["python", "scripts/train_chapter_models_34.py", *(sys.argv[1:] if argv is None else argv)]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
        "model": {"name": "vit_lsla_tiny", "kwargs": kwargs, "params": vitlearn.count_parameters(model)},
        "data": data_info,
        "training": {"function": "vitlearn.train.train_classifier", "epochs": args.epochs, "batch_size": args.batch_size,
                     "lr": args.lr, "weight_decay": args.weight_decay, "label_smoothing": args.label_smoothing},
        "machine": abl.machine(),
        "seconds": round(seconds, 1),
        "history": {"test_acc": hist["test_acc"], "train_loss": [round(l, 5) for l in hist["loss"]]},
        "final_test_acc": hist["test_acc"][-1],
        "final_train_acc": train_acc,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out)
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {out} (test {100 * meta['final_test_acc']:.1f}%, train {100 * meta['final_train_acc']:.1f}%, "
          f"{seconds:.0f} s)")
    return meta


if __name__ == "__main__":
    main()
