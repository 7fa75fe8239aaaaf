"""Plausible UniFormer bugs the tests must catch (run by scripts/mutants.py)."""
SCRATCH = "tests/test_uniformer.py::test_matches_a_forward_written_from_scratch_in_float64"
MUTANTS = [
    dict(name="uniformer: DPE replaces the map instead of being added to it (local blocks)",
         file="vitlearn/layers/uniformer.py",
         old=("        x = x + self.pos_embed(x)\n"
              "        x = x + self.drop_path(_scaled(self.mhra(self.norm1(x)), self.gamma_1))\n"),
         new=("        x = self.pos_embed(x)\n"
              "        x = x + self.drop_path(_scaled(self.mhra(self.norm1(x)), self.gamma_1))\n"),
         tests=[SCRATCH + "[S real widths]"]),
    dict(name="uniformer: global-block LayerNorm eps 1e-5 (PyTorch's default) instead of 1e-6",
         file="vitlearn/layers/uniformer.py",
         old="spatial_dims: int = 2, norm_eps: float = 1e-6):",
         new="spatial_dims: int = 2, norm_eps: float = 1e-5):",
         tests=[SCRATCH + "[S real widths]"]),
    dict(name="uniformer: token-labeling head averages the token logits instead of taking their max",
         file="vitlearn/models/uniformer.py",
         old="return logits + 0.5 * aux.amax(dim=1)",
         new="return logits + 0.5 * aux.mean(dim=1)",
         tests=[SCRATCH + "[S+TL non-square]"]),
    dict(name="uniformer: inflation repeats kernels over time without dividing by k_t", fast=True,
         file="vitlearn/convert/uniformer.py",
         old="out[key] = value.unsqueeze(2).repeat(1, 1, k_t, 1, 1) / k_t",
         new="out[key] = value.unsqueeze(2).repeat(1, 1, k_t, 1, 1)",
         tests=["tests/test_uniformer.py::test_inflation_repeats_each_kernel_over_time_and_divides"]),
]
