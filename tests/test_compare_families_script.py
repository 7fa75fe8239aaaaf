"""scripts/compare_families.py: every model of its table builds and runs, and a smoke-scale run
writes the numbers that the same training gives here."""
import importlib.util
import json
import statistics
from pathlib import Path

import pytest
import torch

from vitlearn.train import train_classifier

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_families.py"
spec = importlib.util.spec_from_file_location("compare_families", SCRIPT)
cf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cf)


@pytest.mark.parametrize("name", list(cf.all_models()))
def test_every_model_builds_and_classifies_16px(name):
    model = cf.build(name, num_classes=2, seed=0).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, cf.IMG, cf.IMG))
    assert out.shape == (2, 2) and torch.isfinite(out).all()


def test_windows_only_control_has_no_shift():
    model = cf.build("Windows only", num_classes=2, seed=0)
    blocks = [b for stage in model.layers for b in stage.blocks]
    assert len(blocks) == 4 and all(b.shift_size == (0, 0) and b.attn_mask is None for b in blocks)
    assert len(model.layers) == 1                                        # no patch merging either


def test_smoke_run_matches_a_run_done_here(tmp_path):
    out = tmp_path / "cmp.json"
    argv = ["--smoke", "--jobs", "1", "--seeds", "0", "1", "--tasks", "photos",
            "--families", "ViT", "Windows only", "--out", str(out)]
    result = cf.main(argv)
    saved = json.loads(out.read_text())
    assert saved["summary"] == json.loads(json.dumps(result["summary"]))
    assert saved["seeds"] == [0, 1] and saved["smoke"] and "--smoke" in saved["command"]
    assert {"torch", "vitlearn", "numpy", "python"} <= set(saved["machine"]["versions"])
    assert len(saved["rows"]) == 2 * 2 and saved["tasks"]["photos"]["n_train"] == 64
    assert saved["models"]["ViT"]["params_10_classes"] > 0 and saved["models"]["ViT"]["macs"] > 0

    # One (task, family, seed) trained here, outside the script: the same numbers.
    tr, va, k, epochs, _ = cf.make_task("photos", smoke=True)
    assert sorted(set(tr.targets.tolist())) == list(range(6))           # the smoke subset keeps every class
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = cf.build("ViT", k, seed=1)
        hist = train_classifier(model, *tr.tensors(), *va.tensors(), epochs=epochs, seed=1, batch_size=64, lr=3e-3,
                                weight_decay=0.05, label_smoothing=0.1)
    finally:
        torch.set_num_threads(threads)
    row = next(r for r in saved["rows"] if (r["task"], r["family"], r["seed"]) == ("photos", "ViT", 1))
    assert row["final_val_acc"] == hist["test_acc"][-1]
    assert row["train_loss"][-1] == pytest.approx(hist["loss"][-1], abs=1e-5)

    # The summary is that of the rows: mean and a t interval around it.
    accs = [r["final_val_acc"] for r in saved["rows"] if (r["task"], r["family"]) == ("photos", "ViT")]
    s = saved["summary"]["photos"]["ViT"]
    assert s["mean"] == pytest.approx(statistics.fmean(accs)) and s["n_seeds"] == 2
    assert s["ci95"][0] <= s["mean"] <= s["ci95"][1]
    if accs[0] != accs[1]:
        assert s["ci95"][1] - s["ci95"][0] == pytest.approx(2 * 12.706 * statistics.stdev(accs) / 2**0.5, rel=1e-3)
    with pytest.raises(ValueError, match="unknown families"):
        cf.main(["--smoke", "--families", "NoSuchNet", "--out", str(tmp_path / "x.json")])
