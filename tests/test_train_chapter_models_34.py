"""scripts/train_chapter_models_34.py at smoke scale, and the shipped checkpoint chapters 3-4 load."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from vitlearn.train import evaluate

ROOT = Path(__file__).resolve().parents[1]


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train34 = load_script("train_chapter_models_34")
abl = load_script("lsla_ablation")


def test_smoke_train_save_load(tmp_path):
    out = tmp_path / "m.pt"
    meta = train34.main(["--epochs", "1", "--placements", "1", "--subset", "64", "--threads", "1", "--out", str(out)])
    side = json.loads(out.with_suffix(".json").read_text())
    for key in ("command", "seed", "data", "machine", "model", "final_test_acc", "history"):
        assert key in side
    assert "--subset 64" in side["command"] and side["data"]["n_train"] == 64
    model, loaded_meta = train34.load(out)
    assert loaded_meta == json.loads(json.dumps(meta))
    args = abl.parse_args(["--placements", "1"])
    _, _, x_te, y_te = abl.translated_digits(canvas=args.img_size, digit_size=args.digit_size, placements=1,
                                             seed=args.data_seed)
    assert evaluate(model, x_te, y_te) == side["final_test_acc"]     # the loaded weights are the trained ones


def test_shipped_checkpoint_reproduces_its_recorded_accuracy():
    path = ROOT / "notebooks" / "checkpoints" / "vit_lsla_digits.pt"
    assert path.stat().st_size < 2_000_000
    model, meta = train34.load(path)
    d = meta["data"]
    kw = meta["model"]["kwargs"]
    _, _, x_te, y_te = abl.translated_digits(canvas=kw["img_size"], digit_size=12, placements=d["placements"],
                                             seed=d["data_seed"])
    assert len(y_te) == d["n_test"]
    assert evaluate(model, x_te, y_te) == pytest.approx(meta["final_test_acc"], abs=1.5 / len(y_te))
    assert meta["final_test_acc"] > 0.85                              # trained, not a random model
    assert all(torch.isfinite(p).all() for p in model.parameters())
