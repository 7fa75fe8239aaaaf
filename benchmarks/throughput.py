"""Throughput and peak memory of vitlearn against timm: inference and training steps, same weights, same run.

    python benchmarks/throughput.py                                  # every model, batch 8, both modes
    python benchmarks/throughput.py --batch-sizes 1 8 32 --repeats 3
    python benchmarks/throughput.py --models vit_base_patch16_224 swin_tiny_patch4_window7_224 \\
        --modes infer --amp bf16 --compile

What is timed, for every model in ``--models`` (default: ``MODELS`` below, one line per family):

* Both libraries have it: timm's model is built with every weight and buffer randomised
  (``vitlearn.utils.randomize_``), vitlearn's is converted from it (``vitlearn.from_timm``; their logits
  must agree, checked in the same run), and the two are timed on the same input, alternately.
  A cell (model, mode, batch) is timed ``--repeats`` times; each repeat times both models (the order
  swaps between repeats, so a drift in clock or load hits both), and gives one ratio. The table shows
  vitlearn's and timm's throughput from the median times, the median of the per-repeat ratios
  (vitlearn / timm throughput: above 1 means vitlearn is faster) and their min–max.
* Only vitlearn has it (``vit_lsla_tiny``, UniFormer): its throughput, without a ratio.
  Video models (input (C, T, H, W)) are counted in clips per second.
* A name neither registry knows (a family not merged yet) is skipped with a message.

Modes: ``infer`` is a forward pass under ``torch.inference_mode`` (eval mode); ``train`` is a
training step in train mode: forward, cross-entropy on random labels, backward, AdamW step.

Peak memory (MiB), one untimed extra pass per cell and library: on CUDA
``torch.cuda.max_memory_allocated`` during the pass (reset before it); elsewhere the peak of the
bytes held by live tensors during the pass, tracked by a ``TorchDispatchMode`` over every ATen op's
outputs, plus what is resident before it (weights and buffers; in train mode also AdamW's state).
Both include the weights. On CPU, scratch memory inside a single kernel is not seen.

Machine rate: the run times a large square fp32 ``torch.mm`` (bf16/fp16 with --amp) before every
model and reports the median in GFLOP/s. Each model's share of it is 2 · MACs · images/s ÷ rate, MACs
per image from ``vitlearn.count_macs`` (a training step is counted as 3× the forward MACs: the
backward pass costs about twice the forward). Writes JSON (command, machine, versions, rows) to
benchmarks/results/.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import sys
import time
import weakref
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import vitlearn  # noqa: E402
from vitlearn.utils import randomize_  # noqa: E402

# One line per family; names absent from vitlearn's registry (a family not merged yet) are skipped.
MODELS = {
    "vit": ["vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224"],
    "swin": ["swin_tiny_patch4_window7_224"],
    "cait": ["cait_xxs24_224", "cait_s24_224"],
    "maxvit": ["maxvit_tiny_tf_224"],
    "vit_lsla": ["vit_lsla_tiny"],                                   # vitlearn only
    "uniformer": ["uniformer_small", "uniformer_small_video"],       # vitlearn only
}
DEFAULT_MODELS = [name for names in MODELS.values() for name in names]
AMP = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
    elif device.type == "mps":
        torch.mps.synchronize()


def matmul_gflops(device: torch.device, dtype: torch.dtype, n: int, reps: int = 5) -> float:
    """Median rate of an n×n by n×n ``torch.mm`` in GFLOP/s (2·n³ floating-point operations)."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    torch.mm(a, b)
    times = []
    for _ in range(reps):
        sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 / statistics.median(times) / 1e9


class Bench:
    """One model in one library, ready to run a step of a mode on a batch size."""

    def __init__(self, model, input_size, amp_dtype, compile: bool):
        self.model, self.input_size, self.amp_dtype = model, input_size, amp_dtype
        self.device = next(model.parameters()).device
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=amp_dtype == torch.float16)
        self.fn = torch.compile(model) if compile else model
        self.inputs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def batch(self, b: int):
        if b not in self.inputs:
            g = torch.Generator().manual_seed(b)
            x = torch.randn(b, *self.input_size, generator=g).to(self.device)
            y = torch.randint(0, self.model.num_classes, (b,), generator=g).to(self.device)
            self.inputs[b] = (x, y)
        return self.inputs[b]

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def step(self, mode: str, b: int, iters: int = 1) -> float:
        """Seconds per step (mean over ``iters``)."""
        x, y = self.batch(b)
        self.model.train(mode == "train")
        sync(self.device)
        start = time.perf_counter()
        for _ in range(iters):
            if mode == "infer":
                with torch.inference_mode(), self.autocast():
                    self.fn(x)
            else:
                self.opt.zero_grad(set_to_none=True)
                with self.autocast():
                    loss = F.cross_entropy(self.fn(x).float(), y)
                self.scaler.scale(loss).backward()
                self.scaler.step(self.opt)
                self.scaler.update()
        sync(self.device)
        return (time.perf_counter() - start) / iters

    def resident_bytes(self) -> int:
        seen, total = set(), 0
        tensors = list(self.model.parameters()) + list(self.model.buffers())
        tensors += [t for s in self.opt.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
        for t in tensors:
            st = t.untyped_storage()
            if st.data_ptr() not in seen:
                seen.add(st.data_ptr())
                total += st.nbytes()
        return total

    def peak_mib(self, mode: str, b: int) -> float:
        self.opt.zero_grad(set_to_none=True)   # the step's gradients are then new tensors, seen below
        if self.device.type == "cuda":
            sync(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.step(mode, b)
            return torch.cuda.max_memory_allocated(self.device) / 2 ** 20
        base = self.resident_bytes()
        with LiveTensorPeak() as tracker:
            self.step(mode, b)
        return (base + tracker.peak) / 2 ** 20


class LiveTensorPeak(TorchDispatchMode):
    """Peak bytes of the storages created by ATen ops inside the context and still alive (freed
    storages are subtracted when Python releases them)."""

    def __init__(self):
        super().__init__()
        self.live, self.peak, self.current = set(), 0, 0

    def _free(self, key, n):
        self.live.discard(key)
        self.current -= n

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                st = t.untyped_storage()
                key = (st.data_ptr(), id(st))
                if key not in self.live and st.nbytes() > 0:
                    self.live.add(key)
                    self.current += st.nbytes()
                    weakref.finalize(st, self._free, key, st.nbytes())
        self.peak = max(self.peak, self.current)
        return out


def input_size_of(name: str, vm, tm) -> tuple[int, ...]:
    if tm is not None:
        return tuple(tm.pretrained_cfg["input_size"])
    if hasattr(vm, "default_input_size"):
        return tuple(vm.default_input_size)
    side = getattr(getattr(vm, "patch_embed", None), "img_size", (224, 224))
    return (3, *side)


def calibrate(benches, mode, b, min_time: float) -> int:
    """Iterations per timing: enough for ``min_time`` seconds of the slower library (at least 1)."""
    slowest = max(bench.step(mode, b) for bench in benches)
    return max(1, round(min_time / slowest))


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} logical CPUs"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def format_tables(result: dict) -> str:
    """The Markdown table of a run (``result`` as written to the JSON file) and its matmul-rate line."""
    lines = ["| model | mode | batch | vitlearn /s | timm /s | vitlearn / timm (min–max) | peak MiB vitlearn / timm "
             "| matmul share vitlearn / timm |", "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        both = "timm_per_s" in r
        unit = "clips" if r["unit"] == "clip" else "img"
        ratio = f"{r['ratio']:.2f} ({r['ratio_min']:.2f}–{r['ratio_max']:.2f})" if both else "—"
        timm_s = r["timm_per_s"] if both else "—"
        timm_mem = r["timm_peak_mib"] if both else "—"
        timm_share = f"{100 * r['timm_matmul_share']:.1f}%" if both else "—"
        lines.append(f"| {r['model']} | {r['mode']} | {r['batch']} | {r['vitlearn_per_s']} {unit} | {timm_s} | {ratio} | "
                     f"{r['vitlearn_peak_mib']} / {timm_mem} | {100 * r['vitlearn_matmul_share']:.1f}% / {timm_share} |")
    mm = result["matmul"]
    g = mm["gflops"]
    lines.append(f"\nmatmul rate ({mm['n']}×{mm['n']} {mm['dtype'].removeprefix('torch.')} torch.mm): median "
                 f"{mm['median_gflops']:.0f} GFLOP/s, range {min(g):.0f}–{max(g):.0f} over {len(g)} probes; "
                 f"peak memory: {result['memory']}")
    return "\n".join(lines)


def main(argv=None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--show", metavar="JSON", default=None, help="print the tables of a saved run and exit")
    ap.add_argument("--models", nargs="+", default=DEFAULT_MODELS, help="default: every entry of MODELS")
    ap.add_argument("--modes", nargs="+", choices=["infer", "train"], default=["infer", "train"])
    ap.add_argument("--batch-sizes", "--batch-size", nargs="+", type=int, default=[8], dest="batch_sizes")
    ap.add_argument("--repeats", type=int, default=3, help="timings of each cell per library (>= 3 for a spread)")
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds per timing (iterations calibrated)")
    ap.add_argument("--iters", type=int, default=None, help="fixed iterations per timing (overrides --min-time)")
    ap.add_argument("--amp", choices=list(AMP), default="none", help="autocast dtype")
    ap.add_argument("--compile", action="store_true", help="torch.compile both models")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory passes")
    ap.add_argument("--matmul-size", type=int, default=None, help="side of the rate-probe matmul (CPU 2048, GPU 8192)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch.set_num_threads (CPU); on a machine shared with other jobs 1 avoids OpenMP "
                         "threads spinning against each other")
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/throughput-<device>.json)")
    args = ap.parse_args(argv)
    if args.show:
        result = json.loads(Path(args.show).read_text())
        print(f"{result['command']}\n{result['date']}, {result['machine']}, {result['threads']} threads, "
              f"torch {result['torch']}, timm {result['timm']}, vitlearn {result['vitlearn']}\n")
        print(format_tables(result))
        return result

    device = torch.device(args.device) if args.device else vitlearn.get_device()
    if args.threads:
        torch.set_num_threads(args.threads)
    amp_dtype = AMP[args.amp]
    mm_dtype = amp_dtype or torch.float32
    mm_n = args.matmul_size or (8192 if device.type == "cuda" else 2048)
    torch.manual_seed(0)
    rows, rates = [], []
    for name in args.models:
        in_timm = timm.is_model(name)
        if name not in vitlearn.list_models():
            print(f"skip {name}: not in vitlearn's registry{' (timm has it)' if in_timm else ''}", file=sys.stderr)
            continue
        rates.append(matmul_gflops(device, mm_dtype, mm_n))
        tm = randomize_(timm.create_model(name)).to(device).eval() if in_timm else None
        if tm is not None:
            vm = vitlearn.from_timm(tm).to(device).eval()
        else:
            vm = randomize_(vitlearn.create_model(name)).to(device).eval()
        size = input_size_of(name, vm, tm)
        unit = "clip" if len(size) == 4 else "img"
        macs = vitlearn.count_macs(vm, size)
        err = None
        if tm is not None:
            x = torch.randn(2, *size, device=device)
            with torch.inference_mode():
                ref = tm(x)
                err = ((ref - vm(x)).abs().max() / ref.abs().max()).item()
        libs = {"vitlearn": Bench(vm, size, amp_dtype, args.compile)}
        if tm is not None:
            libs["timm"] = Bench(tm, size, amp_dtype, args.compile)
        for mode in args.modes:
            for b in args.batch_sizes:
                for bench in libs.values():                     # warm-up (and compilation)
                    bench.step(mode, b)
                iters = args.iters or calibrate(libs.values(), mode, b, args.min_time)
                times = {lib: [] for lib in libs}
                for r in range(args.repeats):                   # alternate, swapping the order
                    order = list(libs) if r % 2 == 0 else list(libs)[::-1]
                    for lib in order:
                        times[lib].append(libs[lib].step(mode, b, iters))
                peak = {lib: None if args.no_memory else round(bench.peak_mib(mode, b), 1)
                        for lib, bench in libs.items()}
                row = dict(model=name, mode=mode, batch=b, unit=unit, iters=iters, macs=macs, rel_logit_err=err)
                for lib in libs:
                    per_s = b / statistics.median(times[lib])
                    row[f"{lib}_per_s"] = round(per_s, 2)
                    row[f"{lib}_peak_mib"] = peak[lib]
                    row[f"{lib}_times_s"] = [round(t, 5) for t in times[lib]]
                if tm is not None:
                    ratios = [a / o for a, o in zip(times["timm"], times["vitlearn"])]
                    row.update(ratio=round(statistics.median(ratios), 3), ratio_min=round(min(ratios), 3),
                               ratio_max=round(max(ratios), 3))
                rows.append(row)
                ratio = f"ratio {row['ratio']:.2f} ({row['ratio_min']:.2f}–{row['ratio_max']:.2f})" if tm is not None else ""
                print(f"{name:30s} {mode:5s} b{b:<3d} vitlearn {row['vitlearn_per_s']:8.1f} {unit}/s "
                      f"{('timm %8.1f ' % row['timm_per_s']) if tm is not None else ''}{ratio}", flush=True)
        del libs, tm, vm
    rates.append(matmul_gflops(device, mm_dtype, mm_n))

    rate = statistics.median(rates)
    for r in rows:   # share of the machine's matmul rate, against the median of the run's probes
        flop_per_item = 2 * r["macs"] * (3 if r["mode"] == "train" else 1)
        for lib in ("vitlearn", "timm"):
            if f"{lib}_per_s" in r:
                r[f"{lib}_matmul_share"] = round(flop_per_item * r[f"{lib}_per_s"] / (rate * 1e9), 4)
    mem = "CUDA max_memory_allocated" if device.type == "cuda" else "live tensors + resident"
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    result = dict(command=" ".join(["python"] + (sys.argv if argv is None else ["benchmarks/throughput.py", *argv])),
                  date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"),
                  device=str(device), machine=machine, threads=torch.get_num_threads(), torch=torch.__version__,
                  timm=timm.__version__, vitlearn=vitlearn.__version__, python=platform.python_version(),
                  amp=args.amp, compile=args.compile, repeats=args.repeats, memory=None if args.no_memory else mem,
                  matmul=dict(n=mm_n, dtype=str(mm_dtype), gflops=[round(r, 1) for r in rates],
                              median_gflops=round(statistics.median(rates), 1)),
                  rows=rows)
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / f"throughput-{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("\n" + format_tables(result))
    print(f"\nwrote {out}")
    return result


if __name__ == "__main__":
    main()
