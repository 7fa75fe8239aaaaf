"""Plausible CaiT bugs the tests must catch (run by scripts/mutants.py)."""
MUTANTS = [
    dict(name="cait: LayerScale missing on the attention branch",
         file="vitlearn/models/vit.py",
         old="x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x))))",
         new="x = x + self.drop_path1(self.attn(self.norm1(x)))",
         tests=["tests/test_cait.py::test_from_timm_full_xxs24_matches_logits"]),
    dict(name="cait: talking-heads pre-softmax mix skipped",
         file="vitlearn/layers/talking_heads.py",
         old="pre_softmax=lambda logits: mix_heads(logits, self.proj_l),",
         new="pre_softmax=lambda logits: logits,",
         tests=["tests/test_cait.py::test_talking_heads_matches_a_head_by_head_reference_and_rows_stop_summing_to_one"]),
    dict(name="cait: class token enters before the self-attention stage",
         file="vitlearn/models/cait.py",
         old=("        patches = self.blocks(self.pos_drop(self.patch_embed(x) + self.pos_embed))\n"
              "        cls = self.cls_token.expand(x.shape[0], -1, -1)\n"),
         new=("        cls = self.cls_token.expand(x.shape[0], -1, -1)\n"
              "        tokens = self.blocks(torch.cat([cls, self.pos_drop(self.patch_embed(x) + self.pos_embed)], 1))\n"
              "        cls, patches = tokens[:, :1], tokens[:, 1:]\n"),
         tests=["tests/test_cait.py::test_class_token_enters_after_the_self_attention_stage"]),
]
