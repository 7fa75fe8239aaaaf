"""fvcore-style MAC counts: norm charges by formula, and UniFormer's published fvcore totals."""
import torch
import torch.nn as nn

import vitlearn
from vitlearn.fvcore_style import count_macs_fvcore_style, norm_charges


def test_norm_charges_by_formula():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.BatchNorm2d(8, affine=False),
                          nn.GroupNorm(2, 8), nn.Flatten(2), nn.LayerNorm(36), nn.LayerNorm(36, elementwise_affine=False))
    n = 8 * 6 * 6
    assert norm_charges(model, (3, 6, 6), batch_size=2) == (2 + 1 + 5 + 5 + 4) * n
    conv = 8 * 3 * 9 * 36
    assert count_macs_fvcore_style(model, (3, 6, 6)) == conv + 17 * n


def test_uniformer_small_matches_fvcore():
    # fvcore on the official code: 3.644 G (reference note, section 2.3); count_macs alone is 0.3% lower
    with torch.device("meta"):
        model = vitlearn.create_model("uniformer_small")
    total = count_macs_fvcore_style(model)
    assert round(total / 1e9, 3) == 3.644
    assert total > vitlearn.count_macs(model)
