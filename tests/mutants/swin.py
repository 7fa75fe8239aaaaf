"""Plausible bugs in the window machinery and Swin (run by scripts/mutants.py)."""
REF = "tests/test_references.py::test_swin_window_attention_matches_token_by_token_reference"

MUTANTS = [
    dict(name="swin: shifted-window mask dropped", fast=True,
         file="vitlearn/models/swin.py",
         old="x = self.attn(x, mask=self.attn_mask)", new="x = self.attn(x, mask=None)",
         tests=[REF]),
    dict(name="swin: roll direction reversed (both rolls)",
         file="vitlearn/layers/window.py",
         old=("    return torch.roll(x, shifts=(-sh, -sw), dims=(1, 2))\n\n\n"
              "def reverse_cyclic_shift(x: torch.Tensor, shift: int | tuple[int, int]) -> torch.Tensor:\n"
              "    \"\"\"Inverse of :func:`cyclic_shift`: rolls a (B, H, W, C) map down and right by ``shift``.\"\"\"\n"
              "    sh, sw = to_2tuple(shift)\n"
              "    return torch.roll(x, shifts=(sh, sw), dims=(1, 2))\n"),
         new=("    return torch.roll(x, shifts=(sh, sw), dims=(1, 2))\n\n\n"
              "def reverse_cyclic_shift(x: torch.Tensor, shift: int | tuple[int, int]) -> torch.Tensor:\n"
              "    \"\"\"Inverse of :func:`cyclic_shift`: rolls a (B, H, W, C) map down and right by ``shift``.\"\"\"\n"
              "    sh, sw = to_2tuple(shift)\n"
              "    return torch.roll(x, shifts=(-sh, -sw), dims=(1, 2))\n"),
         tests=[REF]),
    dict(name="swin: relative-position lookup transposed (key − query)", fast=True,
         file="vitlearn/layers/window.py",
         old='return rearrange(table[index], "q k h -> h q k")', new='return rearrange(table[index], "k q h -> h q k")',
         tests=[REF]),
    dict(name="swin: per-window mask repeated in the wrong order across the images of a batch",
         file="vitlearn/layers/window.py",
         old='return repeat(t, "w ... -> (b w) ...", b=batch_windows // num_windows)',
         new='return repeat(t, "w ... -> (w b) ...", b=batch_windows // num_windows)',
         tests=[REF]),
]
