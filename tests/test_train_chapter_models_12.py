"""scripts/train_chapter_models_12.py at smoke scale, and the shipped checkpoints chapters 1-2 load."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from vitlearn.train import evaluate

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("train12", ROOT / "scripts" / "train_chapter_models_12.py")
train12 = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train12)


def test_make_data_places_each_digit_in_its_box():
    x_tr, y_tr, x_te, y_te, boxes = train12.make_data(placements=2, subset=10)
    assert x_tr.shape == (20, 3, 24, 24) and len(y_tr) == 20 and len(x_te) == len(y_te) == len(boxes) == 359
    # the ink of a test digit lies inside its box: the brightest pixel of each image is in the box
    flat = x_te[:, 0].flatten(1).argmax(1)
    r, c = flat // 24, flat % 24
    assert ((r >= boxes[:, 0]) & (r < boxes[:, 0] + 16) & (c >= boxes[:, 1]) & (c < boxes[:, 1] + 16)).all()
    again = train12.make_data(placements=2, subset=10)
    assert torch.equal(again[2], x_te) and torch.equal(again[4], boxes)          # seeded: the same every call


def test_smoke_train_save_reload(tmp_path):
    metas, models = train12.main(["--epochs", "3", "--placements", "1", "--subset", "96", "--batch-size", "32",
                                  "--threads", "1", "--out-dir", str(tmp_path)])
    x_tr, y_tr, x_te, y_te, _ = train12.make_data(placements=1, subset=96)
    for name in ("vit_digits", "swin_digits"):
        side = json.loads((tmp_path / f"{name}.json").read_text())
        assert side == json.loads(json.dumps(metas[name]))
        for key in ("command", "seed", "data", "machine", "model", "history", "final_test_acc"):
            assert key in side
        assert "--subset 96" in side["command"] and side["data"]["n_train"] == 96
        loss = side["history"]["train_loss"]
        assert loss[-1] < loss[0]                                                 # it learns
        model, _ = train12.load(tmp_path / f"{name}.pt")
        with torch.no_grad():
            assert torch.equal(model(x_te[:8]), models[name].eval()(x_te[:8]))   # reloads to the same logits
        assert evaluate(model, x_te, y_te) == side["final_test_acc"]
        assert evaluate(model, x_tr, y_tr) == side["final_train_acc"]


@pytest.mark.parametrize("name, floor", [("vit_digits", 0.8), ("swin_digits", 0.9)])
def test_shipped_checkpoint_reproduces_its_recorded_accuracy(name, floor):
    path = ROOT / "notebooks" / "checkpoints" / f"{name}.pt"
    assert path.stat().st_size < 1_500_000
    model, meta = train12.load(path)
    d = meta["data"]
    _, _, x_te, y_te, _ = train12.make_data(placements=d["placements"], seed=d["data_seed"], subset=d["subset"],
                                            step=d["step"])
    assert len(y_te) == d["n_test"]
    assert evaluate(model, x_te, y_te) == pytest.approx(meta["final_test_acc"], abs=1.5 / len(y_te))
    assert meta["final_test_acc"] > floor                                         # trained, not a random model (0.1)
    assert meta["final_train_acc"] > 0.99                                         # converged on its training set
