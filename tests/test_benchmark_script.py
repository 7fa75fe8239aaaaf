"""The throughput benchmark runs (at a tiny scale) and writes its tables; no timing is asserted."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "throughput.py"


def load():
    spec = importlib.util.spec_from_file_location("throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_live_tensor_peak_counts_live_storages():
    module = load()
    mib = 256 * 1024                                   # float32 elements in 1 MiB
    with module.LiveTensorPeak() as tracker:
        x = torch.randn(mib)
        y = x * 2
        del y                                          # freed: the next tensor reuses the budget
        z = x + 1
        view = z[:10]                                  # a view allocates nothing
    assert tracker.peak == 2 * 4 * mib and view.numel() == 10


def test_throughput_script_smoke(tmp_path, capsys):
    module = load()
    out = tmp_path / "bench.json"
    module.main(["--models", "vit_tiny_patch16_224", "vit_lsla_tiny", "not_a_model", "--batch-sizes", "1",
                 "--repeats", "1", "--iters", "1", "--matmul-size", "256", "--threads", "1", "--device", "cpu", "--out", str(out)])
    result = json.loads(out.read_text())
    rows = {(r["model"], r["mode"]): r for r in result["rows"]}
    assert sorted(rows) == [("vit_lsla_tiny", "infer"), ("vit_lsla_tiny", "train"),
                            ("vit_tiny_patch16_224", "infer"), ("vit_tiny_patch16_224", "train")]
    weights_mib = 5.7e6 * 4 / 2 ** 20                  # ViT-Ti: 5.7 M float32 parameters
    for (name, mode), row in rows.items():
        assert row["vitlearn_per_s"] > 0 and 0 < row["vitlearn_matmul_share"] < 1
        assert row["vitlearn_peak_mib"] > (weights_mib if name.startswith("vit_tiny") else 0)
        if name == "vit_lsla_tiny":                    # not in timm: no ratio
            assert "ratio" not in row and "timm_per_s" not in row
        else:  # randomised weights, so a wrong conversion could not agree by accident
            assert row["rel_logit_err"] < 1e-6 and row["ratio"] > 0 and row["ratio_min"] <= row["ratio"] <= row["ratio_max"]
    for name in ("vit_tiny_patch16_224", "vit_lsla_tiny"):  # gradients and AdamW's two moments
        assert rows[name, "train"]["vitlearn_peak_mib"] > 2 * rows[name, "infer"]["vitlearn_peak_mib"]
    assert result["matmul"]["median_gflops"] > 0 and len(result["matmul"]["gflops"]) == 3
    printed = capsys.readouterr()
    assert "| vit_tiny_patch16_224 | train | 1 |" in printed.out and "skip not_a_model" in printed.err
    module.main(["--show", str(out)])                 # reprints the saved tables
    assert "| vit_lsla_tiny | infer | 1 |" in capsys.readouterr().out
