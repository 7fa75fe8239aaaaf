"""The chapter 6 training script at smoke scale: its schemes start where they claim to, and a run is
reproducible and starts at the known loss of a 10-class model at chance."""
import json
import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import layerscale_depth as script  # noqa: E402


@pytest.mark.parametrize("scheme", ["scalar (ReZero/SkipInit)", "zero last layer (Fixup-style)"])
def test_zero_initialised_schemes_start_as_the_identity(scheme):
    torch.manual_seed(0)
    model = script.build(scheme, depth=3, eps=1e-5, in_chans=3).eval()
    x = torch.randn(2, 17, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.blocks(x), x, rtol=0, atol=0)


def test_layer_scale_starts_within_eps_of_the_identity_and_plain_does_not():
    torch.manual_seed(0)
    x = torch.randn(2, 17, 64)
    ls = script.build("LayerScale", depth=3, eps=1e-5, in_chans=3).eval()
    plain = script.build("none", depth=3, eps=1e-5, in_chans=3).eval()
    with torch.no_grad():
        ls_change = ((ls.blocks(x) - x).norm() / x.norm()).item()
        plain_change = ((plain.blocks(x) - x).norm() / x.norm()).item()
    assert 0 < ls_change < 1e-4 < plain_change


def test_smoke_run_is_reproducible_and_starts_at_chance(tmp_path):
    argv = ["--depth", "2", "--steps", "4", "--seeds", "0", "--grad-steps", "2",
            "--schemes", "none", "LayerScale", "--out", str(tmp_path / "a.json")]
    first = script.main(argv)
    second = script.main(argv[:-1] + [str(tmp_path / "b.json")])
    assert [r["loss"] for r in first["runs"]] == [r["loss"] for r in second["runs"]]
    on_disk = json.loads((tmp_path / "a.json").read_text())
    assert on_disk["runs"][1]["scheme"] == "LayerScale" and len(on_disk["runs"][1]["grad_norm_per_block"]) == 2
    # A freshly initialised 10-class classifier (head std 0.02) predicts nearly uniformly: loss ≈ ln 10.
    assert abs(first["runs"][0]["loss"][0] - math.log(10)) < 0.3
