"""scripts/lsla_ablation.py at smoke scale, and the data it trains on (vitlearn.data.translated_digits)."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("sklearn")

from vitlearn.data import translated_digits  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "lsla_ablation.py"


def load_script():
    spec = importlib.util.spec_from_file_location("lsla_ablation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_translated_digits_deterministic_and_translated():
    a = translated_digits(seed=0)
    b = translated_digits(seed=0)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    x_tr, y_tr, x_te, y_te = a
    assert x_tr.shape[1:] == (3, 32, 32) and x_te.shape[1:] == (3, 32, 32)
    assert len(x_tr) + len(x_te) == 1797 and len(x_te) == round(0.2 * 1797)
    assert set(y_tr.tolist()) == set(range(10))
    assert torch.equal(x_tr[:, 0], x_tr[:, 2])                      # grey, replicated to 3 channels
    assert abs(x_tr.mean().item()) < 1e-4 and abs(x_tr.std().item() - 1) < 1e-3  # standardised on train
    # The ink's centre of mass moves: positions vary over the canvas (a digit_size-16 glyph on a
    # 32 canvas has its top-left corner in 0..16 on each axis).
    ink = (x_tr[:, 0] - x_tr[:, 0].flatten(1).median(1).values[:, None, None]).clamp(min=0)
    coords = torch.arange(32.0)
    cy = (ink.sum(2) * coords).sum(1) / ink.sum((1, 2))
    cx = (ink.sum(1) * coords).sum(1) / ink.sum((1, 2))
    assert cy.std() > 3 and cx.std() > 3
    assert cy.max() - cy.min() > 10 and cx.max() - cx.min() > 10
    # Another seed: other positions (and noise).
    c = translated_digits(seed=1)
    assert not torch.equal(c[0][: len(x_tr)], x_tr)


def test_lsla_ablation_smoke(tmp_path):
    script = load_script()
    out = tmp_path / "ablation.json"
    variants = ["MSA", "LSA"]
    result = script.main(["--epochs", "1", "--subset", "128", "--seeds", "0", "--variants", *variants,
                          "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["complete"] is True
    assert data["summary"] == json.loads(json.dumps(result["summary"]))
    for key in ("command", "date", "seeds", "epochs", "model", "training", "data", "machine"):
        assert key in data
    assert "lsla_ablation.py" in data["command"] and "--subset 128" in data["command"]
    assert data["seeds"] == [0] and data["epochs"] == 1 and data["data"]["n_train"] == 128
    for key in ("platform", "processor", "torch", "torch_threads"):
        assert key in data["machine"]

    rows = {r["variant"]: r for r in data["rows"]}
    assert set(rows) == set(variants) == set(data["summary"]) and len(data["rows"]) == len(variants)
    for r in data["rows"]:
        assert r["seed"] == 0 and len(r["test_acc"]) == 1
        for key in ("final_test_acc", "best_test_acc"):
            assert 0.0 <= r[key] <= 1.0
        assert r["final_train_loss"] > 0 and r["macs"] > 0 and r["seconds"] >= 0

    # LSA drops W_k and W_v (with biases) in every block: 2·(C² + C) per block, C the stage's width.
    cfg = data["model"]
    removed = sum(depth * 2 * (c * c + c) for depth, c in
                  ((d, cfg["embed_dim"] * 2**i) for i, d in enumerate(cfg["depths"])))
    assert rows["MSA"]["params"] - rows["LSA"]["params"] == removed
    assert rows["MSA"]["macs"] > rows["LSA"]["macs"]
