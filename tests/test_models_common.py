"""Checks every registered model must pass: device- and dtype-agnostic, autocast- and compile-clean."""
import pytest
import torch

import vitlearn

# A small configuration per family, for the checks that run real arithmetic on the CPU.
SMALL = {
    "cait": ("cait_xxs24_224", dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=5)),
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
    return (2, model.patch_embed.in_chans, *model.patch_embed.img_size)


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


@pytest.mark.parametrize("fam", sorted(SMALL))
def test_torch_compile_forward(fam):
    name, kwargs = SMALL[fam]
    model = vitlearn.create_model(name, **kwargs).eval()
    x = torch.randn(_input_size(model))
    compiled = torch.compile(model)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("fam", sorted(SMALL))
def test_float64_and_half_follow_input_dtype(fam):
    name, kwargs = SMALL[fam]
    model = vitlearn.create_model(name, **kwargs).eval().double()
    out = model(torch.randn(_input_size(model), dtype=torch.float64))
    assert out.dtype == torch.float64
