"""scripts/lsla_ablation.py: its data, its statistics (known answers) and a smoke-scale run compared
with the same configuration trained here."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch
from scipy import stats

from vitlearn.train import train_classifier

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "lsla_ablation.py"


def load_script():
    spec = importlib.util.spec_from_file_location("lsla_ablation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


abl = load_script()
SMOKE = ["--epochs", "1", "--placements", "1", "--subset", "96", "--variants", "MSA", "LSA"]


def test_translated_digits_placements_split_and_determinism():
    a = abl.translated_digits(canvas=24, digit_size=12, placements=2, seed=0)
    b = abl.translated_digits(canvas=24, digit_size=12, placements=2, seed=0)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    x_tr, y_tr, x_te, y_te = a
    n_test = round(0.2 * 1797)
    assert len(y_te) == n_test and len(y_tr) == 2 * (1797 - n_test)
    assert x_tr.shape[1:] == (3, 24, 24) and torch.equal(x_tr[:, 0], x_tr[:, 2])
    half = len(y_tr) // 2
    assert torch.equal(y_tr[:half], y_tr[half:])                  # the same glyphs twice ...
    assert (x_tr[:half] - x_tr[half:]).abs().flatten(1).amax(1).gt(0.5).float().mean() > 0.9  # ... elsewhere
    assert abs(x_tr.mean().item()) < 1e-4 and abs(x_tr.std().item() - 1) < 1e-3
    # the first placement matches placements=1 in labels (split by glyph, same order)
    one = abl.translated_digits(canvas=24, digit_size=12, placements=1, seed=0)
    assert torch.equal(one[1], y_tr[:half]) and torch.equal(one[3], y_te)
    with pytest.raises(ValueError, match="placements"):
        abl.translated_digits(placements=0)


def test_welch_matches_scipy():
    a = [0.91, 0.93, 0.90, 0.94, 0.92]
    b = [0.88, 0.90, 0.86, 0.91]
    ours = abl.welch(a, b, confidence=0.95)
    ref = stats.ttest_ind(a, b, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert ours["t"] == pytest.approx(ref.statistic, rel=1e-9)
    assert ours["p"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert ours["ci"] == pytest.approx([ci.low, ci.high], rel=1e-9)
    assert ours["diff"] == pytest.approx(0.92 - 0.8875)
    with pytest.raises(ValueError):
        abl.welch([0.9], b)


def test_holm_known_answer():
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4·0.005, 3·0.01, 2·0.03, max(1·0.04, previous) = 0.02, 0.03, 0.06, 0.06
    assert abl.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert abl.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_pairwise_planned_and_holm():
    rows = [{"variant": v, "final_test_acc": acc} for v, accs in
            {"MSA": [0.80, 0.81, 0.82], "LSA": [0.90, 0.91, 0.93], "LSA + DS": [0.90, 0.92, 0.91]}.items() for acc in accs]
    out = abl.pairwise(rows, ["MSA", "LSA", "LSA + DS"])
    assert [(p["a"], p["b"]) for p in out] == [("LSA", "MSA"), ("LSA + DS", "LSA")]
    p_raw = [abl.welch([0.90, 0.91, 0.93], [0.80, 0.81, 0.82])["p"], abl.welch([0.90, 0.92, 0.91], [0.90, 0.91, 0.93])["p"]]
    assert [p["p_holm"] for p in out] == pytest.approx(abl.holm(p_raw))
    assert out[0]["distinguishable"] and not out[1]["distinguishable"]
    lo, hi = out[0]["ci_simultaneous"]
    assert lo < out[0]["ci"][0] < out[0]["diff"] < out[0]["ci"][1] < hi   # the simultaneous interval is wider


def test_smoke_run_matches_a_run_done_here(tmp_path):
    out = tmp_path / "ablation.json"
    result = abl.main([*SMOKE, "--seeds", "0", "1", "--threads", "1", "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["complete"] is True and data["seeds"] == [0, 1] and data["data"]["n_train"] == 96
    assert "--subset 96" in data["command"] and "torch_threads" in data["machine"]
    assert data["pairwise"] == json.loads(json.dumps(result["pairwise"]))
    assert [(p["a"], p["b"]) for p in data["pairwise"]] == [("LSA", "MSA")]

    # Re-run one (variant, seed) here, outside the script: the same numbers must come out.
    args = abl.parse_args([*SMOKE, "--seeds", "1"])
    (x_tr, y_tr, x_te, y_te), _ = abl.load_data(args)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                                       # as the script ran (--threads 1)
    try:
        model = abl.build("LSA", args, seed=1)
        hist = train_classifier(model, x_tr, y_tr, x_te, y_te, seed=1, epochs=1, batch_size=args.batch_size, lr=args.lr,
                                weight_decay=args.weight_decay, label_smoothing=args.label_smoothing)
    finally:
        torch.set_num_threads(threads)
    row = next(r for r in data["rows"] if r["variant"] == "LSA" and r["seed"] == 1)
    assert row["final_test_acc"] == hist["test_acc"][-1]
    assert row["final_train_loss"] == pytest.approx(hist["loss"][-1], rel=1e-6)

    # The statistics in the file are those of its rows.
    msa = [r["final_test_acc"] for r in data["rows"] if r["variant"] == "MSA"]
    lsa = [r["final_test_acc"] for r in data["rows"] if r["variant"] == "LSA"]
    assert data["pairwise"][0]["diff"] == pytest.approx(sum(lsa) / 2 - sum(msa) / 2)

    # LSA drops W_k and W_v (with biases) in every block: 2·(D² + D) per block, D the stage's width.
    cfg, rows = data["model"], {r["variant"]: r for r in data["rows"]}
    removed = sum(d * 2 * (c * c + c) for d, c in ((d, cfg["embed_dim"] * 2**i) for i, d in enumerate(cfg["depths"])))
    assert rows["MSA"]["params"] - rows["LSA"]["params"] == removed

    # Two partial runs on disjoint seeds merge into the same rows.
    parts = []
    for seed in (0, 1):
        parts.append(tmp_path / f"part{seed}.json")
        abl.main([*SMOKE, "--seeds", str(seed), "--threads", "1", "--out", str(parts[-1])])
    merged = abl.main(["--merge", *map(str, parts), "--out", str(tmp_path / "merged.json")])
    key = lambda r: (r["variant"], r["seed"], r["final_test_acc"])
    assert sorted(map(key, merged["rows"])) == sorted(map(key, data["rows"]))
    with pytest.raises(ValueError, match="overlap"):
        abl.main(["--merge", str(parts[0]), str(parts[0]), "--out", str(tmp_path / "bad.json")])
