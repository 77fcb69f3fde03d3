"""DSG-KD losses (docs/architecture.md, "Losses and KD terms"), vectorised over batch, terms, layers and heads.

Teacher and student tokenise differently, so nothing is compared token by token: every signal is first
pooled to the *terms* both sides share (`pooling`), then compared (`hidden`, `attention`, `logit`); `kd`
holds the tensor-level functions that do both. Import from the submodules: this package stays empty so
reading the hidden-loss registry does not load torch.
"""
