import pytest
import timm
import torch

import vitlearn
from conftest import assert_from_timm_matches, randomize_


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("vit_base_patch16_224", {}),
        ("vit_tiny_patch16_224", {"num_classes": 10}),
        ("vit_small_patch32_224", {"global_pool": "avg", "class_token": False, "fc_norm": None}),
        ("vit_tiny_patch16_384", {}),
    ],
)
def test_from_timm_matches_logits(name, kwargs):
    assert_from_timm_matches(randomize_(timm.create_model(name, **kwargs)).eval(), batch=2)


def test_from_timm_refuses_what_it_cannot_represent():
    tm = timm.create_model("vit_tiny_patch16_224", reg_tokens=4)
    with pytest.raises(NotImplementedError, match="register tokens"):
        vitlearn.from_timm(tm)
    with pytest.raises(NotImplementedError, match="no converter"):
        vitlearn.from_timm(torch.nn.Linear(2, 2))


def test_vit_b16_counts_match_the_paper():
    model = vitlearn.create_model("vit_base_patch16_224")
    assert abs(vitlearn.count_parameters(model) / 86.6e6 - 1) < 0.01
    macs = vitlearn.count_macs(model, breakdown=True)
    assert abs(macs["total"] / 17.58e9 - 1) < 0.01
    # attention: 2 products of 197×197×64 per head, 12 heads, 12 blocks
    assert macs["attention"] == 2 * 197 * 197 * 64 * 12 * 12
    assert macs["total"] == macs["linear"] + macs["conv"] + macs["attention"]


@pytest.mark.parametrize("name, params", [("vit_tiny_patch16_224", 5.7e6), ("vit_small_patch16_224", 22.1e6),
                                          ("vit_large_patch16_224", 304.3e6)])
def test_published_parameter_counts(name, params):
    with torch.device("meta"):
        model = vitlearn.create_model(name)
    assert abs(vitlearn.count_parameters(model) / params - 1) < 0.01


def test_record_attention_on_vit_gives_every_block():
    model = vitlearn.create_model("vit_tiny_patch16_224", num_classes=10, depth=3).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        plain = model(x)
        with vitlearn.record_attention(model) as maps:
            recorded = model(x)
    assert sorted(maps) == [f"blocks.{i}.attn" for i in range(3)]
    assert maps["blocks.0.attn"].shape == (2, 3, 197, 197)
    torch.testing.assert_close(recorded, plain, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "x, err, match",
    [
        (torch.randn(1, 1, 224, 224), ValueError, "expects 3 input channels"),
        (torch.randn(1, 3, 200, 200), ValueError, "expects 224x224 images"),
        (torch.zeros(1, 3, 224, 224, dtype=torch.uint8), TypeError, "floating-point"),
    ],
)
def test_vit_bad_input(x, err, match):
    model = vitlearn.create_model("vit_tiny_patch16_224", depth=1)
    with pytest.raises(err, match=match):
        model(x)


def test_image_size_must_be_a_multiple_of_the_patch():
    with pytest.raises(ValueError, match="not divisible by the patch size 16"):
        vitlearn.create_model("vit_tiny_patch16_224", img_size=200)


def test_vit_trains_a_step():
    model = vitlearn.create_model("vit_tiny_patch16_224", img_size=32, num_classes=4, depth=2, drop_path_rate=0.1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 4, (8,))
    losses = []
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
