"""Which vector a classifier's head reads: the first token's state (`cls`, Hugging Face's) or the masked mean.

A sequence classifier from `transformers` reads the first token (`<s>` / `[CLS]`). A small general student whose
pretraining never taught that token to summarise a note can sit on the label prior for epochs when the label lives
in a few words it does not know: on the positive control world 6 of 12 KD-off xlmr-tiny seeds never left it in 6
epochs, while every KD row did (docs/levers.md). `mean` hands the head the attention-masked mean of the last
layer instead, so every word's state reaches the task loss from the first step; the head's own layers (XLM-R's
dense + tanh, BERT's pooler) stay as they are and read the mean where they read the first token.

The choice is stored in the checkpoint's config.json (`dsgkd_pooling`) and applied again by every dsgkd loader.
Plain `AutoModelForSequenceClassification.from_pretrained` ignores the key and reads the first token, so a
mean-pooled student must be loaded with dsgkd (`dsgkd.pipeline.student_files.load_classifier`) or exported to ONNX,
whose graph holds the mean; its model card says so.
"""
from __future__ import annotations

import threading

import torch

from dsgkd.errors import UserError

CONFIG_KEY = "dsgkd_pooling"
POOLINGS = ("cls", "mean")
_HOOKS = "_dsgkd_pooling_hooks"
_STATE_KWARGS = ("hidden_states", "features")  # what BERT's pooler and XLM-R's head call the states


def first_token_reader(model: torch.nn.Module) -> torch.nn.Module:
    """The module that takes the sequence's states and reads position 0 from them."""
    head = getattr(model, "classifier", None)
    if head is not None and type(head).__name__.endswith("ClassificationHead"):
        return head  # RoBERTa / XLM-R family: the head slices token 0 itself
    pooler = getattr(getattr(model, "base_model", None), "pooler", None)
    if pooler is not None:
        return pooler  # BERT family: the pooler slices token 0, the classifier reads its output
    raise UserError(f"pooling mean: {type(model).__name__} has neither a sequence classification head nor a pooler "
                    "that reads the first token; use pooling cls for this model")


def set_pooling(model: torch.nn.Module, pooling: str) -> torch.nn.Module:
    """Make `model` (a sequence classifier) pool `pooling`, in place, and record it in its config."""
    if pooling not in POOLINGS:
        raise UserError(f"pooling {pooling!r}: one of {', '.join(POOLINGS)}")
    for handle in getattr(model, _HOOKS, ()):
        handle.remove()
    setattr(model, _HOOKS, ())
    if pooling == "cls":
        if hasattr(model.config, CONFIG_KEY):
            delattr(model.config, CONFIG_KEY)
        return model
    reader = first_token_reader(model)
    # The model's forward sees the mask, the reader does not: the model's hook leaves it for the reader's, per
    # thread, so two threads scoring through one model (a server's workers) never read each other's mask.
    masks = threading.local()

    def keep_mask(_module, args, kwargs):
        masks.value = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)

    def mean_first(states):
        """`states` with position 0 replaced by the masked mean: the reader slices position 0 as before."""
        mask = getattr(masks, "value", None)
        if mask is None:
            mean = states.mean(1)
        else:
            weights = mask[:, :states.shape[1]].unsqueeze(-1).to(states.dtype)
            mean = (states * weights).sum(1) / weights.sum(1).clamp(min=1)
        return torch.cat([mean.unsqueeze(1), states[:, 1:]], dim=1)

    def mean_at_first(_module, args, kwargs):
        if args:
            return (mean_first(args[0]), *args[1:]), kwargs
        name = next(key for key in _STATE_KWARGS if key in kwargs)
        return args, {**kwargs, name: mean_first(kwargs[name])}

    setattr(model, _HOOKS, (model.register_forward_pre_hook(keep_mask, with_kwargs=True),
                            reader.register_forward_pre_hook(mean_at_first, with_kwargs=True)))
    setattr(model.config, CONFIG_KEY, pooling)
    return model


def saved_pooling(model: torch.nn.Module) -> str:
    return getattr(model.config, CONFIG_KEY, "cls")


def apply_saved_pooling(model: torch.nn.Module) -> torch.nn.Module:
    """A loaded checkpoint pools as it was trained to (config.json's `dsgkd_pooling`; none: the first token)."""
    return set_pooling(model, saved_pooling(model))
