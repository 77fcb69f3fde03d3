"""The distributions a search space declares per setting: what each can sample, hold and seed.

Each knows its own Optuna `suggest_*` call, its extreme values (validated against the base config) and
whether a value lies inside it (seeded points must: Optuna rejects an enqueued value outside a log range).
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

Scalar = Union[bool, int, float, str, None]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FloatDist(Strict):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> "FloatDist":
        if self.low > self.high:
            raise ValueError(f"low {self.low} > high {self.high}")
        if self.log and (self.low <= 0 or self.step is not None):
            raise ValueError("log: true needs low > 0 and no step")
        return self

    def values(self) -> list[Any]:
        return [self.low, self.high]

    def contains(self, v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and self.low <= v <= self.high

    def suggest(self, trial, name: str) -> Any:
        return trial.suggest_float(name, self.low, self.high, log=self.log, step=self.step)


class IntDist(Strict):
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _check(self) -> "IntDist":
        if self.low > self.high:
            raise ValueError(f"low {self.low} > high {self.high}")
        if self.log and (self.low < 1 or self.step != 1):
            raise ValueError("log: true needs low >= 1 and step 1")
        return self

    def values(self) -> list[Any]:
        return [self.low, self.high]

    def contains(self, v: Any) -> bool:
        return (isinstance(v, int) and not isinstance(v, bool) and self.low <= v <= self.high
                and (v - self.low) % self.step == 0)

    def suggest(self, trial, name: str) -> Any:
        return trial.suggest_int(name, self.low, self.high, log=self.log, step=self.step)


class CategoricalDist(Strict):
    type: Literal["categorical"]
    choices: list[Scalar] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> "CategoricalDist":
        if len({repr(c) for c in self.choices}) != len(self.choices):
            raise ValueError("repeated choices")
        return self

    def values(self) -> list[Any]:
        return list(self.choices)

    def contains(self, v: Any) -> bool:
        return any(v == c and isinstance(v, bool) == isinstance(c, bool) for c in self.choices)

    def suggest(self, trial, name: str) -> Any:
        return trial.suggest_categorical(name, self.choices)


Distribution = Annotated[Union[FloatDist, IntDist, CategoricalDist], Field(discriminator="type")]


def as_declared(dist, v):
    """Match a seeded value's type to the distribution's (Optuna compares categorical choices by type)."""
    if isinstance(dist, CategoricalDist):
        return next((c for c in dist.choices if c == v and isinstance(c, bool) == isinstance(v, bool)), v)
    return float(v) if isinstance(dist, FloatDist) else v
