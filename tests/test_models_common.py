"""Checks every registered model must pass: device- and dtype-agnostic, autocast- and compile-clean."""
import shutil

import pytest
import torch

import vitlearn

# A small configuration per family, for the checks that run real arithmetic on the CPU.
SMALL = {
    "cait": ("cait_xxs24_224", dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=5)),
    # img 64: partitions of 2 (stage maps 16, 8, 4, 2); widths multiples of the head dimension 32
    "maxvit": ("maxvit_tiny_tf_224", dict(img_size=64, stem_width=16, dims=(32, 32, 64, 64), depths=(1, 1, 1, 1),
                                          num_classes=5)),
    "swin": ("swin_tiny_patch4_window7_224", dict(img_size=32, patch_size=2, embed_dim=16, depths=(2, 2),
                                                   num_heads=(1, 2), window_size=4, num_classes=5)),
    "vit": ("vit_tiny_patch16_224", dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=5)),
    # patch_size 4 is the conv stem's stride; a shifted block in stage 1 (8x8 map, window 4)
    "vit_lsla": ("vit_lsla_tiny", dict(img_size=32, embed_dim=16, depths=(2, 2), num_heads=(1, 2), window_size=4,
                                       num_classes=5)),
}


def family(name: str) -> str:
    # the module that registered the variant, so "vit_lsla_tiny" is not counted as a "vit"
    return vitlearn.registry.model_family(name)


def test_family_is_the_registering_module():
    assert family("vit_base_patch16_224") == "vit"
    assert family("swin_tiny_patch4_window7_224") == "swin"
    assert family("vit_lsla_tiny") == "vit_lsla"


def test_every_family_has_a_small_config():
    missing = {family(n) for n in vitlearn.list_models()} - SMALL.keys()
    assert not missing, f"add a small configuration for {missing} to SMALL"


def test_registry_lookup_and_errors():
    assert "vit_base_patch16_224" in vitlearn.list_models("vit_*")
    assert vitlearn.list_models("no_such_*") == []
    with pytest.raises(ValueError, match="unknown model 'vit_gigantic'"):
        vitlearn.create_model("vit_gigantic")


def _input_size(model):
    embed = getattr(model, "patch_embed", model)  # models without a patch embedding (MaxViT's conv stem) keep the sizes
    return (2, embed.in_chans, *embed.img_size)


@pytest.mark.parametrize("name", vitlearn.list_models())
def test_runs_on_meta_device(name):
    # Any tensor a forward pass creates without following its input's device fails here.
    with torch.device("meta"):
        model = vitlearn.create_model(name)
    model = model.to("meta")
    x = torch.empty(_input_size(model), device="meta")
    out = model(x)
    assert out.device.type == "meta" and out.shape == (2, 1000)


@pytest.mark.parametrize("fam", sorted(SMALL))
def test_bf16_autocast_forward_backward_finite(fam):
    name, kwargs = SMALL[fam]
    model = vitlearn.create_model(name, **kwargs)
    x = torch.randn(_input_size(model))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
        assert out.dtype == torch.bfloat16
        loss = out.float().logsumexp(-1).mean()
    loss.backward()
    assert torch.isfinite(out.float()).all()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def _small_random(fam):
    from conftest import randomize_

    name, kwargs = SMALL[fam]
    return randomize_(vitlearn.create_model(name, **kwargs)).eval()


def _rel(a, ref):
    return ((a.float() - ref).abs().max() / ref.abs().max()).item()


@pytest.mark.parametrize("fam", sorted(SMALL))
def test_torch_compile_matches_eager(fam):
    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("torch.compile on the CPU needs a C++ compiler (g++ or c++ on PATH); none found")
    model = _small_random(fam)
    x = torch.randn(_input_size(model))
    with torch.no_grad():
        ref = model(x)
        out = torch.compile(model)(x)
    assert _rel(out, ref) < 1e-5


# Tolerances relative to the largest logit: float64 differs from float32 by float32 rounding; bf16
# keeps 8 bits of mantissa (relative step 2^-8 ≈ 4e-3 per operation); float16 keeps 11.
DTYPE_TOLERANCE = {"float64": 1e-5, "bfloat16 autocast": 6e-2, "float16": 1e-2}


@pytest.mark.parametrize("fam", sorted(SMALL))
def test_other_dtypes_agree_with_float32_in_value(fam):
    model = _small_random(fam)
    x = torch.randn(_input_size(model))
    with torch.no_grad():
        ref = model(x)
        errors = {}
        out = model.double()(x.double())
        assert out.dtype == torch.float64
        errors["float64"] = _rel(out, ref)
        model.float()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
        assert out.dtype == torch.bfloat16
        errors["bfloat16 autocast"] = _rel(out, ref)
        # The CPU build of PyTorch >= 2.1 has float16 kernels for every op these models use.
        out = model.half()(x.half())
        assert out.dtype == torch.float16
        errors["float16"] = _rel(out, ref)
    bad = {k: v for k, v in errors.items() if not v < DTYPE_TOLERANCE[k]}
    assert not bad, f"{fam}: relative errors {bad} above {DTYPE_TOLERANCE}"
