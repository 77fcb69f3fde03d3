"""DSG-KD losses (DESIGN §3), vectorised over batch, terms, layers and heads.

Teacher and student tokenise differently, so nothing is compared token by token: every signal is first
pooled to the *terms* both sides share (`pooling`), then compared (`hidden`, `attention`, `logit`); `kd`
holds the tensor-level functions of DESIGN §4 that do both. Import from the submodules: this package
stays empty so reading the hidden-loss registry does not load torch.
"""
