import itertools

import pytest
import timm
import torch

import vitlearn
from conftest import assert_from_timm_matches, randomize_, rel_err
from vitlearn.layers.window import (
    PatchMerging,
    RelativePositionBias,
    WindowAttention,
    cyclic_shift,
    relative_position_index,
    reverse_cyclic_shift,
    shifted_window_mask,
    window_partition,
    window_reverse,
)

# ---------------------------------------------------------------- window machinery


def test_window_partition_round_trip_and_order():
    x = torch.randn(2, 12, 8, 5)
    windows = window_partition(x, 4)
    assert windows.shape == (2 * 3 * 2, 16, 5)
    # windows run image by image, then row-major over the window grid; tokens row-major inside
    assert torch.equal(windows[1], x[0, 0:4, 4:8].reshape(16, 5))
    assert torch.equal(windows[2], x[0, 4:8, 0:4].reshape(16, 5))
    assert torch.equal(windows[6], x[1, 0:4, 0:4].reshape(16, 5))
    assert torch.equal(window_reverse(windows, 4, 12, 8), x)
    assert torch.equal(window_reverse(window_partition(x, (3, 2)), (3, 2), 12, 8), x)
    with pytest.raises(ValueError, match="cannot be cut into 5x5 windows"):
        window_partition(x, 5)


def test_cyclic_shift_is_undone():
    x = torch.randn(1, 6, 6, 2)
    shifted = cyclic_shift(x, 2)
    assert torch.equal(shifted[0, 0, 0], x[0, 2, 2])  # rolled up and left
    assert torch.equal(reverse_cyclic_shift(shifted, 2), x)


@pytest.mark.parametrize("window", [3, (2, 3)])
def test_relative_position_index_matches_brute_force(window):
    mh, mw = (window, window) if isinstance(window, int) else window
    tokens = [(r, c) for r in range(mh) for c in range(mw)]
    expected = torch.tensor([[(qr - kr + mh - 1) * (2 * mw - 1) + (qc - kc + mw - 1) for kr, kc in tokens]
                             for qr, qc in tokens])
    index = relative_position_index(window)
    assert index.dtype == torch.long
    assert torch.equal(index, expected)
    assert index.max() == (2 * mh - 1) * (2 * mw - 1) - 1  # every table entry is used
    bias = RelativePositionBias(window, num_heads=2)
    assert bias.relative_position_bias_table.shape == ((2 * mh - 1) * (2 * mw - 1), 2)
    assert list(bias.state_dict()) == ["relative_position_bias_table"]  # the index is rebuilt, not stored
    expected_bias = bias.relative_position_bias_table[expected].permute(2, 0, 1)
    assert torch.equal(bias(), expected_bias)


def _region_labels(H, W, M, s):
    """Brute force: label of each pixel of the shifted map, from the slices [0:-M), [-M:-s), [-s:)."""
    def band(i, n):
        return 0 if i < n - M else (1 if i < n - s else 2)

    return torch.tensor([[3 * band(i, H) + band(j, W) for j in range(W)] for i in range(H)])


def test_shifted_window_mask_is_minus_100_exactly_between_regions():
    H = W = 14
    M, s = 7, 3
    mask = shifted_window_mask(H, W, M, s)
    assert mask.shape == (4, 49, 49) and mask.dtype == torch.float32
    labels = window_partition(_region_labels(H, W, M, s)[None, :, :, None], M)[..., 0]
    different = labels[:, :, None] != labels[:, None, :]
    assert torch.equal(mask, torch.where(different, -100.0, 0.0))
    # 9 regions in all: 1 + 2 + 2 + 4 groups of mutually visible tokens over the 4 windows
    groups = [len(torch.unique(m, dim=0)) for m in mask]
    assert groups == [1, 2, 2, 4] and sum(groups) == 9
    assert set(mask.unique().tolist()) == {-100.0, 0.0}


def test_masked_window_attention_equals_attention_region_by_region():
    torch.manual_seed(0)
    H = W = 8
    M, s, dim, heads = 4, 2, 8, 2
    attn = WindowAttention(dim, heads, M).double().eval()
    randomize_(attn, std=0.5)
    x = torch.randn(2, H, W, dim, dtype=torch.double)  # an already shifted map
    mask = shifted_window_mask(H, W, M, s).double()
    out = window_reverse(attn(window_partition(x, M), mask=mask), M, H, W)

    labels = _region_labels(H, W, M, s)
    table = attn.relative_position_bias_table
    expected = torch.zeros_like(x)
    for wr, wc in itertools.product(range(H // M), range(W // M)):
        rows, cols = slice(wr * M, wr * M + M), slice(wc * M, wc * M + M)
        win = x[:, rows, cols].reshape(2, M * M, dim)
        lab = labels[rows, cols].reshape(-1)
        q, k, v = attn.qkv(win).reshape(2, M * M, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
        logits = (q @ k.transpose(-2, -1)) * attn.scale + table[relative_position_index(M)].permute(2, 0, 1)
        res = torch.zeros(2, heads, M * M, dim // heads, dtype=x.dtype)
        for region in lab.unique():
            idx = (lab == region).nonzero().flatten()
            sub = logits[:, :, idx][:, :, :, idx].softmax(-1)  # attention restricted to one region
            res[:, :, idx] = sub @ v[:, :, idx]
        res = attn.proj(res.transpose(1, 2).reshape(2, M * M, dim))
        expected[:, rows, cols] = res.reshape(2, M, M, dim)
    assert torch.allclose(out, expected, atol=1e-12)


@pytest.mark.parametrize("with_mask", [False, True])
def test_window_attention_fused_equals_explicit(with_mask):
    attn = randomize_(WindowAttention(16, 4, 4)).eval()
    x = torch.randn(2 * 4, 16, 16)
    mask = shifted_window_mask(8, 8, 4, 2) if with_mask else None
    with torch.no_grad():
        fused = attn(x, mask=mask)
        with vitlearn.explicit_attention(attn):
            explicit = attn(x, mask=mask)
    assert rel_err(explicit, fused) < 1e-5


def test_patch_merging_concatenates_neighbours_in_swin_order():
    merge = PatchMerging(2)
    assert merge.reduction.bias is None and merge.reduction.out_features == 4
    merge.norm, merge.reduction = torch.nn.Identity(), torch.nn.Identity()
    # x[0, r, c] = (10r + c, -(10r + c)) on a 2x4 map
    x = torch.tensor([[[10 * r + c, -(10 * r + c)] for c in range(4)] for r in range(2)], dtype=torch.float)[None]
    out = merge(x)
    assert out.shape == (1, 1, 2, 8)
    # (row, col) offsets (0,0), (1,0), (0,1), (1,1) of the second 2x2 block (columns 2, 3)
    assert out[0, 0, 1].tolist() == [2, -2, 12, -12, 3, -3, 13, -13]
    with pytest.raises(ValueError, match="must be even"):
        PatchMerging(2)(torch.randn(1, 3, 4, 2))


# ---------------------------------------------------------------- the model against timm


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("swin_tiny_patch4_window7_224", {}),
        ("swin_small_patch4_window7_224", {}),
        ("swin_base_patch4_window7_224", {}),
        ("swin_base_patch4_window12_384", {}),
        # the Large widths, heads and windows at reduced depth (timm builds the same blocks for any depth)
        ("swin_large_patch4_window7_224", {"depths": (2, 2, 2, 2)}),
        ("swin_large_patch4_window12_384", {"depths": (2, 2, 2, 2)}),
        # shift only along the width in stage 4 (a 7x14 map), other classes
        ("swin_tiny_patch4_window7_224", {"img_size": (224, 448), "num_classes": 10}),
        ("swin_tiny_patch4_window7_224", {"img_size": 256, "window_size": 8, "depths": (2, 2, 2, 2)}),
    ],
)
def test_from_timm_matches_logits(name, kwargs):
    # In float32 correct code reaches ~1e-6 here (rounding through 12-24 blocks with norm weights near
    # 1), too close to the 1e-6 bar to separate bugs from rounding; float64 agrees to ~1e-15.
    # randomize_ keeps the shifted-window masks (non-persistent buffers: geometry, not weights)
    assert_from_timm_matches(randomize_(timm.create_model(name, **kwargs)).eval(), dtype=torch.float64, tol=1e-10)


def test_state_dict_keys_are_timms():
    with torch.device("meta"):
        ours = vitlearn.create_model("swin_tiny_patch4_window7_224").state_dict()
        theirs = timm.create_model("swin_tiny_patch4_window7_224").state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)


def test_from_timm_refuses_what_it_cannot_represent():
    with pytest.raises(NotImplementedError, match="different windows per stage"):
        vitlearn.from_timm(timm.create_model("swin_s3_tiny_224"))
    with pytest.raises(NotImplementedError, match="dynamic_img_size"):
        tm = timm.create_model("swin_tiny_patch4_window7_224", depths=(2, 2, 2, 2), strict_img_size=False)
        vitlearn.from_timm(tm)


# ---------------------------------------------------------------- published numbers


@pytest.mark.parametrize(
    "name, kwargs, params",
    [
        ("swin_tiny_patch4_window7_224", {}, 28.29e6),
        ("swin_tiny_patch4_window7_224", {"num_classes": 100}, 27.60e6),  # ViT-LSLA's Swin-T figure
        ("swin_tiny_patch4_window7_224", {"num_classes": 102}, 27.60e6),
        ("swin_small_patch4_window7_224", {}, 49.6e6),
        ("swin_base_patch4_window7_224", {}, 87.8e6),
    ],
)
def test_published_parameter_counts(name, kwargs, params):
    with torch.device("meta"):
        model = vitlearn.create_model(name, **kwargs)
    assert abs(vitlearn.count_parameters(model) / params - 1) < 0.01


@pytest.mark.parametrize(
    "name, macs",
    [("swin_tiny_patch4_window7_224", 4.5e9), ("swin_small_patch4_window7_224", 8.7e9),
     ("swin_base_patch4_window7_224", 15.4e9)],
)
def test_published_macs(name, macs):
    # On the meta device the counter sees every shape but computes nothing.
    with torch.device("meta"):
        model = vitlearn.create_model(name)
    counted = vitlearn.count_macs(model, breakdown=True)
    assert abs(counted["total"] / macs - 1) < 0.01
    assert counted["total"] == counted["linear"] + counted["conv"] + counted["attention"]
    if name.startswith("swin_tiny"):
        # Q Kᵀ and A V: every token against the 49 of its window, over all channels, per block
        tokens_channels_depth = [(56 * 56, 96, 2), (28 * 28, 192, 2), (14 * 14, 384, 6), (7 * 7, 768, 2)]
        assert counted["attention"] == sum(2 * n * 49 * c * d for n, c, d in tokens_channels_depth)


# ---------------------------------------------------------------- configuration and input checks


def test_stage4_at_224_is_one_unshifted_window():
    with torch.device("meta"):
        model = vitlearn.create_model("swin_tiny_patch4_window7_224", drop_path_rate=0.2)
    blocks = [b for stage in model.layers for b in stage.blocks]
    assert [b.shift_size for b in blocks[:2]] == [(0, 0), (3, 3)]
    assert all(b.shift_size == (0, 0) and b.attn_mask is None for b in model.layers[3].blocks)
    assert model.layers[3].blocks[1].window_size == (7, 7)
    assert blocks[0].drop_path1.drop_prob == 0.0 and abs(blocks[-1].drop_path1.drop_prob - 0.2) < 1e-9
    assert "attn_mask" not in "".join(model.state_dict())


@pytest.mark.parametrize(
    "kwargs, features",
    [
        ({"img_size": 448}, (14, 14, 768)),
        ({"img_size": (224, 448)}, (7, 14, 768)),
        ({"img_size": 256, "window_size": 8}, (8, 8, 768)),
    ],
)
def test_other_sizes_by_keyword(kwargs, features):
    with torch.device("meta"):
        model = vitlearn.create_model("swin_tiny_patch4_window7_224", num_classes=10, **kwargs)
        x = torch.randn(2, 3, *model.img_size)
        assert model.forward_features(x).shape == (2, *features)
        assert model(x).shape == (2, 10)


def test_bad_image_sizes_say_which_sizes_work():
    with pytest.raises(ValueError, match=r"200x200 .*patch 4, window 7 and 4 stages: each side one of 224, 448, 672"):
        vitlearn.create_model("swin_tiny_patch4_window7_224", img_size=200)
    with torch.device("meta"):
        model = vitlearn.create_model("swin_tiny_patch4_window7_224")
        with pytest.raises(ValueError, match="create the model with img_size=448"):
            model(torch.randn(1, 3, 448, 448))
        with pytest.raises(ValueError, match="each side one of 224, 448"):
            model(torch.randn(1, 3, 224, 230))
        with pytest.raises(ValueError, match="3 input channels"):
            model(torch.randn(1, 1, 224, 224))
        with pytest.raises(TypeError, match="floating-point"):
            model(torch.zeros(1, 3, 224, 224, dtype=torch.uint8))


def test_record_attention_gives_every_window_of_every_block():
    model = vitlearn.create_model("swin_tiny_patch4_window7_224", num_classes=10).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        plain = model(x)
        with vitlearn.record_attention(model) as maps:
            recorded = model(x)
    assert rel_err(plain, recorded) < 1e-5
    windows, heads = (64, 16, 4, 1), (3, 6, 12, 24)
    expected = {f"layers.{i}.blocks.{j}.attn": (2 * windows[i], heads[i], 49, 49)
                for i, depth in enumerate((2, 2, 6, 2)) for j in range(depth)}
    assert {k: tuple(v.shape) for k, v in maps.items()} == expected
    assert torch.allclose(maps["layers.0.blocks.1.attn"].sum(-1), torch.ones(()))
