"""Small models of every family, trained briefly on the offline tasks of ``vitlearn.data``, several seeds.

    python scripts/compare_families.py                     # default scale: the book's run (under 10 min on 2 idle cores)
    python scripts/compare_families.py --tasks digits photos pair_match   # all three tasks
    python scripts/compare_families.py --smoke --out /tmp/smoke.json   # seconds: the test's scale
    python scripts/compare_families.py --resume            # finish an interrupted run (the file is rewritten after every row)

**Families** (``FAMILIES``): one small configuration each, all on 16×16 images, 4×4 tokens after a
stride-4 embedding (UniFormer and MaxViT, which downsample by 32, see the image enlarged 4×), width
32, four attention blocks, built by ``vitlearn.create_model(name, **config)``.
Adding a family is one line, ``"Name": ("registered_variant", {overrides})``; the chapter's table
and figures are drawn from the results file, so the new row appears after a re-run.
``CONTROLS`` holds models that are not a family but make a point: "Windows only" is Swin's first
stage with the shift removed and no patch merging, so that every token sees exactly one 8×8 region
(one 2×2-token window) until the readout.

**Tasks** (``TASKS``): ``digits`` (scikit-learn's digits upsampled to 16×16, 10 classes), ``photos``
(which of six scikit-image photographs a 16×16 crop comes from, validation crops from a held-out
strip), ``pair_match`` (do the two coloured squares in two different regions match? the label is
independent of what any one region holds, see :class:`vitlearn.data.PairMatchDataset`; a model that
adds per-window evidence is right at most 75 % of the time).

**Training**: :func:`vitlearn.train.train_classifier` (AdamW with ``param_groups``, warm-up + cosine,
label smoothing 0.1), the same recipe for every model; the seed fixes the initialisation and the
shuffling, the data are the same for every run. Runs are spread over ``--jobs`` processes of one
thread each (rows record their seconds; the machine may be shared).

**Statistics**: per (task, family), the mean final validation accuracy over seeds, its standard
deviation and a 95 % Student-t interval for the mean (few seeds: wide intervals, reported as such).

The JSON holds the command, seeds, machine, versions, every configuration with its parameters and
MACs, one row per (task, family, seed) with per-epoch curves, wall and CPU seconds, and the summaries.
On a machine shared with other jobs the wall time says little; the CPU seconds of the runs, divided
by ``--jobs``, are what the run would take on the same cores idle.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import multiprocessing as mp
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

import vitlearn
from vitlearn import data
from vitlearn.train import evaluate, train_classifier

IMG = 16

# name -> (registered variant, overrides[, input scale]). Width 32 (16 in MaxViT's first stages), four
# attention blocks (UniFormer: 2 local + 2 global; MaxViT: 4 blocks of MBConv + block + grid attention).
# UniFormer and MaxViT downsample by 32 in four stages, so they see the 16x16 image enlarged 4x
# (nearest neighbour: the same pixels, each a 4x4 block) and their last maps are 2x2, as the others'.
FAMILIES: dict[str, tuple] = {
    "ViT": ("vit_tiny_patch16_224", dict(patch_size=4, embed_dim=32, depth=4, num_heads=2)),
    "CaiT": ("cait_xxs24_224", dict(patch_size=4, embed_dim=32, depth=2, num_heads=2, init_values=0.1)),  # + 2 class-attention blocks
    "Swin": ("swin_tiny_patch4_window7_224", dict(embed_dim=32, depths=(2, 2), num_heads=(2, 4), window_size=2)),
    "ViT-LSLA": ("vit_lsla_tiny", dict(embed_dim=32, depths=(2, 2), num_heads=(2, 4), window_size=2)),
    "UniFormer": ("uniformer_small", dict(depths=(1, 1, 1, 1), embed_dims=(32, 32, 32, 32), head_dim=16), 4),
    "MaxViT": ("maxvit_tiny_tf_224", dict(stem_width=8, dims=(16, 16, 32, 32), depths=(1, 1, 1, 1), head_dim=16,
                                          window_size=2, grid_size=2, expand_ratio=2.0), 4),
}


class Enlarged(torch.nn.Module):
    """``model`` applied to the input enlarged ``scale`` times by nearest-neighbour repetition."""

    def __init__(self, model: torch.nn.Module, scale: int):
        super().__init__()
        self.model, self.scale = model, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(torch.nn.functional.interpolate(x, scale_factor=self.scale, mode="nearest"))


def windows_only(model: torch.nn.Module) -> torch.nn.Module:
    """Removes the shift of every Swin block: windows never exchange information."""
    for stage in model.layers:
        for blk in stage.blocks:
            blk.shift_size, blk.attn_mask = (0, 0), None
    return model


# name -> (registered variant, overrides, function applied after building).
CONTROLS: dict[str, tuple[str, dict, callable]] = {
    "Windows only": ("swin_tiny_patch4_window7_224", dict(embed_dim=32, depths=(4,), num_heads=(2,), window_size=2),
                     windows_only),
}

# name -> (train dataset, val dataset, number of classes, epochs, description); scaled by --smoke.
def make_task(name: str, smoke: bool):
    if name == "digits":
        tr, va = data.DigitsDataset("train", size=IMG), data.DigitsDataset("val", size=IMG)
        epochs, desc = 10, "DigitsDataset(size=16): scikit-learn's digits upsampled, seeded 80/20 split"
    elif name == "photos":
        tr = data.PhotoCropsDataset("train", size=IMG, per_class=200)
        va = data.PhotoCropsDataset("val", size=IMG, per_class=50)
        epochs, desc = 10, ("PhotoCropsDataset(size=16): which of 6 scikit-image photographs; crops with flips and "
                            "colour jitter, 200/50 per class, validation crops from a held-out strip")
    elif name == "pair_match":
        tr, va = data.PairMatchDataset("train", n=2000), data.PairMatchDataset("val", n=1000)
        epochs, desc = 12, ("PairMatchDataset(size=16, grid=2, num_shapes=8, kind='colours'): do two coloured 4x4 "
                            "squares in two different 8x8 regions match? 2000/1000 images, balanced")
    else:
        raise ValueError(f"unknown task {name!r}; choose from {TASKS}")
    if smoke:
        def every(ds):   # 64 evenly spaced images: every class of a class-ordered split
            idx = torch.linspace(0, len(ds) - 1, 64).long()
            return data.TensorImageDataset(ds.images[idx], ds.targets[idx], ds.classes)
        tr, va = every(tr), every(va)
        epochs, desc = 1, desc + "; --smoke: 64 evenly spaced images of each split"
    return tr, va, len(tr.classes), epochs, desc


TASKS = ("digits", "photos", "pair_match")
DEFAULT_TASKS = ("digits", "pair_match")   # photos too would make the default run about 25 % longer
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "notebooks" / "results" / "compare_families.json"


def all_models() -> dict[str, tuple]:
    """name -> (variant, overrides, input scale, function applied after building)."""
    fams = {k: (v[0], v[1], v[2] if len(v) > 2 else 1, None) for k, v in FAMILIES.items()}
    return {**fams, **{k: (v[0], v[1], 1, v[2]) for k, v in CONTROLS.items()}}


def build(name: str, num_classes: int, seed: int) -> torch.nn.Module:
    variant, config, scale, post = all_models()[name]
    torch.manual_seed(seed)
    model = vitlearn.create_model(variant, img_size=IMG * scale, num_classes=num_classes, **config)
    model = post(model) if post else model
    return Enlarged(model, scale) if scale > 1 else model


def t_interval(values: list[float], confidence: float = 0.95) -> list[float]:
    """Student-t confidence interval for the mean (a single value: its point)."""
    from scipy import stats

    m = statistics.fmean(values)
    if len(values) < 2:
        return [m, m]
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return [m - half, m + half]


def summarise(rows: list[dict]) -> dict:
    out: dict = {}
    for r in rows:
        out.setdefault(r["task"], {}).setdefault(r["family"], []).append(r["final_val_acc"])
    return {task: {fam: {"n_seeds": len(a), "mean": statistics.fmean(a), "std": statistics.stdev(a) if len(a) > 1 else 0.0,
                         "ci95": t_interval(a), "min": min(a), "max": max(a)} for fam, a in fams.items()}
            for task, fams in out.items()}


def run_one(job: tuple) -> dict:
    """Trains one (task, family, seed) in this process with one thread; returns its row."""
    task, family, seed, smoke, train_kw = job
    torch.set_num_threads(1)
    tr, va, num_classes, epochs, _ = make_task(task, smoke)
    model = build(family, num_classes, seed)
    t0, c0 = time.perf_counter(), time.process_time()
    hist = train_classifier(model, *tr.tensors(), *va.tensors(), epochs=epochs, seed=seed, **train_kw)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    return {"task": task, "family": family, "seed": seed, "final_val_acc": hist["test_acc"][-1],
            "best_val_acc": max(hist["test_acc"]), "final_train_acc": evaluate(model, *tr.tensors()),
            "val_acc": hist["test_acc"], "train_loss": [round(v, 5) for v in hist["loss"]], "epochs": epochs,
            "seconds": round(seconds, 2), "cpu_seconds": round(cpu_seconds, 2)}


def machine(jobs: int) -> dict:
    import numpy

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "jobs": jobs, "threads_per_job": 1, "device": "cpu",
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "vitlearn": vitlearn.__version__, "numpy": numpy.__version__}}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS), choices=TASKS,
                    help=f"default {list(DEFAULT_TASKS)} (the book's run); also: photos")
    ap.add_argument("--families", nargs="+", default=None, metavar="NAME",
                    help=f"default: all of {list(all_models())}")
    ap.add_argument("--smoke", action="store_true", help="64 images per split, 1 epoch (for the test)")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="processes (one thread each)")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--resume", action="store_true", help="keep the rows of an interrupted run in --out, train the rest")
    return ap.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    families = args.families or list(all_models())
    unknown = [f for f in families if f not in all_models()]
    if unknown:
        raise ValueError(f"unknown families {unknown}; known: {list(all_models())}")
    train_kw = dict(batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, label_smoothing=0.1)
    tasks = {}
    for t in args.tasks:
        tr, va, k, epochs, desc = make_task(t, args.smoke)
        tasks[t] = {"description": desc, "n_train": len(tr), "n_val": len(va), "num_classes": k, "epochs": epochs,
                    "chance": max(torch.bincount(va.targets).tolist()) / len(va)}
    models = {}
    for f in families:
        variant, config, scale, post = all_models()[f]
        m = build(f, 10, 0)
        models[f] = {"variant": variant, "config": {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()},
                     "post": post.__name__ if post else None, "img_size": IMG, "input_scale": scale,
                     "params_10_classes": vitlearn.count_parameters(m), "macs": vitlearn.count_macs(m, (3, IMG, IMG))}
    jobs = [(t, f, s, args.smoke, train_kw) for s in args.seeds for t in args.tasks for f in families]
    order = {(j[0], j[1], j[2]): i for i, j in enumerate(jobs)}
    result = {
        "command": shlex.join(["python", "scripts/compare_families.py", *(sys.argv[1:] if argv is None else argv)]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seeds": args.seeds, "smoke": args.smoke, "machine": machine(args.jobs),
        "training": {"function": "vitlearn.train.train_classifier (AdamW with param_groups, linear warm-up + cosine, "
                                 "label smoothing)", **train_kw},
        "tasks": tasks, "models": models,
        "notes": ("final_val_acc: validation accuracy after the last epoch; ci95: Student-t 95% interval of the mean "
                  "over seeds. pair_match: any model that adds per-window evidence (e.g. 'Windows only') is right "
                  "at most 75% of the time (see the chapter and tests/test_data.py). seconds: wall time on a "
                  "possibly shared machine; cpu_seconds: CPU time of the run's process (one thread)."),
        "complete": False, "rows": [], "summary": {},
    }
    rows: list[dict] = []
    if args.resume and args.out.exists():
        # Rows of an interrupted run with the same settings are kept; only the missing ones are trained.
        old = json.loads(args.out.read_text())
        new = json.loads(json.dumps(result))
        same = all(old.get(k) == new[k] for k in ("training", "smoke")) and all(
            old[k].get(name, new[k][name]) == new[k][name] for k in ("tasks", "models") for name in new[k])
        if not same:
            raise ValueError(f"--resume: {args.out} was written with other settings; remove it or choose --out")
        rows = [r for r in old["rows"] if (r["task"], r["family"], r["seed"]) in order]
        result["resumed_from"] = {"command": old["command"], "date": old["date"], "rows": len(rows)}
    done = {(r["task"], r["family"], r["seed"]) for r in rows}
    todo = [j for j in jobs if (j[0], j[1], j[2]) not in done]
    # The slowest models first, so that the processes finish together.
    todo.sort(key=lambda j: -models[j[1]]["macs"] * tasks[j[0]]["epochs"] * tasks[j[0]]["n_train"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    def write() -> None:
        rows.sort(key=lambda r: order[(r["task"], r["family"], r["seed"])])
        result.update(rows=rows, summary=summarise(rows), total_seconds=round(time.perf_counter() - start, 1),
                      total_cpu_seconds_of_runs=round(sum(r["cpu_seconds"] for r in rows), 1))
        tmp = args.out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(result, indent=1) + "\n")
        tmp.replace(args.out)

    def report(row: dict) -> None:
        rows.append(row)
        write()
        print(f"{len(rows):3d}/{len(jobs)}  {row['task']:<10} {row['family']:<13} seed {row['seed']}: "
              f"val {100 * row['final_val_acc']:5.1f} %  {row['seconds']:6.1f} s ({row['cpu_seconds']:.1f} s CPU)",
              flush=True)

    if args.jobs > 1:
        with mp.get_context("spawn").Pool(args.jobs) as pool:
            for row in pool.imap_unordered(run_one, todo, chunksize=1):
                report(row)
    else:
        threads = torch.get_num_threads()
        try:
            for j in todo:
                report(run_one(j))
        finally:
            torch.set_num_threads(threads)
    result["complete"] = True
    write()
    for task, fams in result["summary"].items():
        print(f"\n{task} (chance {tasks[task]['chance']:.2f})")
        for f, s in fams.items():
            print(f"  {f:<14} {100 * s['mean']:5.1f} %  [{100 * s['ci95'][0]:5.1f}, {100 * s['ci95'][1]:5.1f}]  "
                  f"({s['n_seeds']} seeds)")
    print(f"\nwrote {args.out} ({result['total_seconds']:.0f} s)")
    return result


if __name__ == "__main__":
    main()
