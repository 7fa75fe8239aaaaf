"""The Trainer: exact resumption, the per-epoch log, and DistributedDataParallel equal to one process."""
import csv
import importlib.util
import json
import os
import socket
import subprocess
import sys
from unittest import mock
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch.utils.data import TensorDataset

import vitlearn
from vitlearn.train import Trainer, fit, param_groups, warmup_cosine

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2, num_classes=4)


@pytest.fixture(autouse=True)
def _one_thread():
    # One thread per process: on a loaded 2-core machine OpenMP threads spinning against other jobs
    # slow these small models down by an order of magnitude.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 3, 16, 16, generator=g), torch.randint(0, 4, (n,), generator=g))


def tiny_vit(seed, **kw):
    torch.manual_seed(seed)
    return vitlearn.create_model("vit_tiny_patch16_224", **{**TINY, **kw})


def assert_same_weights(a, b, tol=0.0):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        err = (sa[k].float() - sb[k].float()).abs().max().item()
        assert err <= tol, f"{k}: max |Δ| {err:.2e} above {tol:.0e}"


def test_warmup_cosine_shape():
    f = warmup_cosine(total_steps=100, warmup_steps=10, min_lr_ratio=0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(55) == pytest.approx(0.55) and f(100) == pytest.approx(0.1)
    assert all(f(s) >= f(s + 1) for s in range(10, 100))


def test_param_groups_skip_norms_biases_tokens():
    model = tiny_vit(0)
    decay, no_decay = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    no = {names[id(p)] for p in no_decay["params"]}
    assert {"pos_embed", "cls_token", "norm.weight", "head.bias", "blocks.0.attn.qkv.bias"} <= no
    assert {names[id(p)] for p in decay["params"]} == {n for n, p in model.named_parameters() if n not in no}
    assert "blocks.0.attn.qkv.weight" not in no and decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0


def test_resume_continues_exactly(tmp_path):
    # Dropout and drop-path make the run depend on the RNG state, so a resume that lost it would diverge.
    kw = dict(epochs=3, batch_size=16, lr=3e-3, warmup=0.5, label_smoothing=0.1, grad_clip=1.0, seed=3,
              progress=False)
    drop = dict(drop_rate=0.1, drop_path_rate=0.1)
    train_ds, val_ds = data(64), data(32, seed=1)

    straight = Trainer(tiny_vit(0, **drop), train_ds, val_ds, out_dir=tmp_path / "a", **kw)
    straight.fit()

    first = Trainer(tiny_vit(0, **drop), train_ds, val_ds, out_dir=tmp_path / "b", **kw)
    first.fit(stop_after=1)
    assert first.epoch == 1 and len(first.history) == 1
    # A new trainer around a differently initialised model: everything comes from the checkpoint.
    resumed = Trainer(tiny_vit(99, **drop), train_ds, val_ds, out_dir=tmp_path / "b", resume=True, **kw)
    assert resumed.epoch == 1
    torch.manual_seed(12345)   # the global RNG is disturbed in between; the checkpoint's state must win
    resumed.fit()

    losses = [e["train_loss"] for e in straight.history]
    assert len(set(losses)) == 3                     # training moved
    for a, b in zip(straight.history, resumed.history):
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-7), (a["epoch"], key)
    assert_same_weights(straight.model, resumed.model, tol=1e-6)
    assert resumed.history[-1]["lr"] == pytest.approx(0.0, abs=1e-12)     # the cosine reached its end

    log = json.loads((tmp_path / "b" / "log.json").read_text())
    rows = list(csv.DictReader(open(tmp_path / "b" / "log.csv")))
    assert [e["epoch"] for e in log] == [1, 2, 3] and [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert float(rows[2]["val_acc"]) == pytest.approx(resumed.history[2]["val_acc"])

    with pytest.raises(ValueError, match="batch_size"):
        Trainer(tiny_vit(0), train_ds, out_dir=tmp_path / "b", resume=True, **{**kw, "batch_size": 8})


def test_fit_shortcut_and_bf16_autocast():
    trainer = fit(tiny_vit(0), data(32), data(16, seed=1), epochs=1, batch_size=16, amp="bf16", progress=False)
    entry = trainer.history[0]
    assert entry["epoch"] == 1 and 0 <= entry["val_acc"] <= 1 and torch.isfinite(torch.tensor(entry["train_loss"]))
    with pytest.raises(ValueError, match="amp"):
        Trainer(tiny_vit(0), data(32), epochs=1, amp="fp8")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _script_args(out):
    return ["--model", "vit_tiny_patch16_224", "--model-args", json.dumps({k: v for k, v in TINY.items()
            if k not in ("num_classes", "img_size")}), "--data", "synthetic", "--synthetic-size", "64",
            "--img-size", "16", "--epochs", "2", "--lr", "3e-3", "--warmup", "0.5", "--workers", "0",
            "--no-progress", "--device", "cpu", "--out", str(out)]


def _rank_main(rank, world, port, out, batch):
    # What torchrun sets for each process; scripts/train.py then initialises gloo itself.
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    spec = importlib.util.spec_from_file_location("train_script", ROOT / "scripts" / "train.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    trainer = script.main(_script_args(out) + ["--batch-size", str(batch)])
    torch.save({"weights": trainer.model.state_dict(), "history": trainer.history}, Path(out) / f"rank{rank}.pt")


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The reference: scripts/train.py in this process, batch 16, no torch.distributed."""
    out = tmp_path_factory.mktemp("one")
    with mock.patch.dict(os.environ):
        _rank_main(0, 1, _free_port(), str(out), 16)
    return torch.load(out / "rank0.pt")


def assert_close_weights(ours: dict, ref: dict) -> None:
    d = TINY["embed_dim"]
    for k in ref:
        a, b = ours[k], ref[k]
        if k.endswith("attn.qkv.bias"):
            # The key bias adds the same q·b_k to every logit of a query row, which softmax removes: its
            # gradient is 0 up to rounding, and Adam's normalisation turns that rounding noise into
            # steps of size lr. So it is left out; the query and value biases are compared.
            a, b = torch.cat([a[:d], a[2 * d:]]), torch.cat([b[:d], b[2 * d:]])
        err = ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()
        assert err < 1e-5, f"{k}: relative error {err:.1e} between 2 processes and 1"


def test_ddp_two_processes_equal_one_process(tmp_path, one_process):
    """2 processes × batch 8 (gloo, CPU) == 1 process × batch 16: DDP averages the gradients of the two
    halves of each global batch, and DistributedSampler splits the same permutation between the ranks."""
    mp.spawn(_rank_main, args=(2, _free_port(), str(tmp_path / "ddp"), 8), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / "ddp" / f"rank{r}.pt") for r in (0, 1))
    one = one_process
    for k in r0["weights"]:
        assert torch.equal(r0["weights"][k], r1["weights"][k]), k          # the ranks agree exactly
    assert_close_weights(r0["weights"], one["weights"])
    assert ((r0["weights"]["head.weight"] - tiny_vit(0, num_classes=4).head.weight).abs().max() > 1e-3)
    for a, b in zip(r0["history"], one["history"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_acc"] == pytest.approx(b["val_acc"])
    # Only rank 0 writes: one checkpoint, whose weights are the trained ones.
    ckpt = torch.load(tmp_path / "ddp" / "checkpoint.pt", weights_only=False)
    assert ckpt["epoch"] == 2 and len(ckpt["rng"]) == 2 and ckpt["config"]["world_size"] == 2
    assert all(torch.equal(ckpt["model"][k], r0["weights"][k]) for k in ckpt["model"])


def test_torchrun_runs_the_script_unchanged(tmp_path, one_process):
    """The real launcher with the c10d rendezvous (the multi-node path, here on one host): its
    checkpoint holds the weights of the one-process run."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--rdzv_backend", "c10d",
           "--rdzv_endpoint", f"127.0.0.1:{_free_port()}", str(ROOT / "scripts" / "train.py"),
           *_script_args(tmp_path), "--batch-size", "8"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert ckpt["config"]["world_size"] == 2 and ckpt["epoch"] == 2
    assert_close_weights(ckpt["model"], one_process["weights"])
    assert "epoch 2 train_loss" not in done.stdout      # --no-progress: nothing printed per epoch
