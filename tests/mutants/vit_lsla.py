"""Plausible bugs in ViT-LSLA (run by scripts/mutants.py)."""
STEM = "tests/test_references.py::test_conv_stem_matches_reference_on_non_square_input"
LSLA = "tests/test_references.py::test_lsla_block_matches_reference_with_and_without_its_terms"

MUTANTS = [
    dict(name="vit_lsla: ConvStem height and width swapped in the rearrange", fast=True,
         file="vitlearn/models/vit_lsla.py",
         old='return self.norm(rearrange(x, "b d h w -> b h w d"))', new='return self.norm(rearrange(x, "b d h w -> b w h d"))',
         tests=[STEM]),
    dict(name="vit_lsla: ConvStem GELU removed", fast=True,
         file="vitlearn/models/vit_lsla.py",
         old="x = self.conv2(self.act(self.bn1(self.conv1(x))))", new="x = self.conv2(self.bn1(self.conv1(x)))",
         tests=[STEM]),
    dict(name="vit_lsla: dynamic scale dropped",
         file="vitlearn/layers/lsla.py",
         old="scale = self._gather(self.dynamic_scale_table) if self.dynamic_scale else self.scale",
         new="scale = self.scale", tests=[LSLA]),
    dict(name="vit_lsla: outer bias dropped",
         file="vitlearn/layers/lsla.py",
         old="                    return attn + outer\n", new="                    return attn\n", tests=[LSLA]),
]
