"""Plausible bugs in the layers ViT is built from (run by scripts/mutants.py)."""
MUTANTS = [
    dict(name="vit: GELU flavour swapped (erf -> tanh approximation)", fast=True,
         file="vitlearn/layers/mlp.py",
         old="self.act = act_layer()",
         new='self.act = nn.GELU(approximate="tanh") if act_layer is nn.GELU else act_layer()',
         tests=["tests/test_vit.py::test_from_timm_matches_logits"]),
    dict(name="vit: patch embedding flattens columns first",
         file="vitlearn/layers/patch_embed.py",
         old='x = rearrange(x, "b d h w -> b (h w) d" if self.flatten else "b d h w -> b h w d")',
         new='x = rearrange(x, "b d h w -> b (w h) d" if self.flatten else "b d h w -> b h w d")',
         tests=["tests/test_references.py::test_patch_embed_matches_patch_by_patch_projection_on_non_square_input"]),
]
