"""The two exceptions the CLI prints as a single line: `UserError` (exit 2) and `NonFiniteLossError` (exit 3).

Anything raised as `UserError` is the user's to fix (a file, a field, a row); a `NonFiniteLossError` is a run
whose settings made it diverge; anything else is a bug and keeps its traceback. Both live here, free of
torch, so the CLI can catch them without importing it.
"""
import math

KD_PARTS = {"ce": "task CE", "hidden": "hidden KD", "attention": "attention KD", "logit": "logit KD"}


class UserError(Exception):
    """Bad input: the message names the file, field or row and is shown as-is, without a traceback."""


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf: the run cannot recover, so it stops, saying where and which part.

    Built from the message alone as well (how a Tune trial re-raises a worker's reason, and how pickling
    rebuilds it), so `epoch`, `step` and `parts` are keyword-only.
    """

    def __init__(self, message: str, *, epoch: int | None = None, step: int | None = None,
                 parts: tuple[str, ...] = ()):
        super().__init__(message)
        self.epoch, self.step, self.parts = epoch, step, parts

    @classmethod
    def at(cls, epoch: int, step: int, loss: float, parts: dict[str, float]) -> "NonFiniteLossError":
        """The error for a step whose total `loss` is not finite, given its parts (before weighting)."""
        bad = tuple(k for k, v in parts.items() if not math.isfinite(v))
        if bad:
            which = ", ".join(f"{KD_PARTS.get(k, k)} {parts[k]}" for k in bad)
        elif not math.isfinite(loss):
            which = ("every part finite: " + ", ".join(f"{KD_PARTS.get(k, k)} {v:.4g}" for k, v in parts.items())
                     + "; their weighted sum overflows")
        else:
            which = "on another rank"
        # Before the first update only the weights of the loss or the data can make it non-finite.
        cause = ("lower the KD weights (--alpha/--beta/--gamma) or check the data" if (epoch, step) == (1, 1)
                 else "lower --lr-encoder/--lr-head or the KD weights (--alpha/--beta/--gamma), or check the data")
        return cls(f"non-finite loss ({loss}) at epoch {epoch} step {step} ({which}); {cause}",
                   epoch=epoch, step=step, parts=bad)
