"""The Hugging Face hub, asked only where it can help: local files first, then one cheap question.

`from_pretrained` on a model that is not cached goes straight to the hub, and on an unreachable hub it
retries every file for about a minute, logging each retry, before it fails. So a model missing from the
local cache costs one metadata request with a short timeout and no retries (`hub_status`) before any
download is tried; only a repo the hub says exists is downloaded. With HF_HUB_OFFLINE set nothing is asked.
"""
from __future__ import annotations

import functools
import os
import threading
from typing import Callable, TypeVar

from huggingface_hub import constants as hf_constants

from dsgkd.errors import UserError
from dsgkd.models.presets import ResolvedRef, presets_hint

T = TypeVar("T")

# long enough for a slow but working link to answer a metadata request, short enough that a typo fails at
# once; the hub's own HF_HUB_ETAG_TIMEOUT (its metadata-request timeout) overrides it when set
PROBE_TIMEOUT_S = 1.5


def probe_timeout() -> float:
    explicit = os.environ.get("HF_HUB_ETAG_TIMEOUT")
    return float(explicit) if explicit else PROBE_TIMEOUT_S


def _ask(repo_id: str, timeout: float) -> BaseException | None:
    """What one metadata request for `repo_id` raised (None: the repo exists), waiting at most `timeout`
    seconds in all: `model_info` itself does not retry, but building its headers may first fetch a
    telemetry list with a timeout of its own, so the deadline is the caller's, kept by a thread."""
    from huggingface_hub import HfApi

    outcome: list[BaseException | None] = []

    def ask() -> None:
        try:
            HfApi().model_info(repo_id, timeout=timeout)
            outcome.append(None)
        except Exception as e:  # handed to the caller, which sorts it
            outcome.append(e)

    worker = threading.Thread(target=ask, name="dsgkd-hub-probe", daemon=True)
    worker.start()
    worker.join(timeout)
    return outcome[0] if outcome else TimeoutError(f"no answer within {timeout:g} s")


def hub_status(repo_id: str) -> str | None:
    """None when the hub has `repo_id`; otherwise why it cannot be downloaded, as a clause."""
    if hf_constants.is_offline_mode():
        return "not available offline (HF_HUB_OFFLINE is set)"
    return _probe(repo_id)


@functools.lru_cache(maxsize=None)
def _probe(repo_id: str) -> str | None:
    """Asked once per process and repo: a tokenizer, a config and the weights all follow the same answer."""
    from httpx2 import HTTPError
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    timeout = probe_timeout()
    error = _ask(repo_id, timeout)
    if error is None:
        return None
    if isinstance(error, RepositoryNotFoundError):
        return "no such model on the hub (or it is private: log in with `hf auth login`)"
    if isinstance(error, HfHubHTTPError):
        return f"the hub answered HTTP {error.response.status_code}"
    if isinstance(error, (HTTPError, TimeoutError)):  # connection refused, DNS failure, proxy error, timeout
        return (f"the hub is unreachable ({type(error).__name__}, timeout {timeout:g} s; "
                "set HF_HUB_ETAG_TIMEOUT to wait longer, HF_HUB_OFFLINE=1 to stop asking)")
    raise error


def _not_available(r: ResolvedRef, why: str) -> UserError:
    if r.kind == "preset":
        return UserError(f"model {r.ref!r} ({r.source}): not in the local Hugging Face cache and {why}; "
                         "download it first or pass a local directory")
    return UserError(f"model {r.ref!r}: not a preset, not a local directory, not in the local Hugging Face "
                     f"cache, and {why}{presets_hint(r.ref)}")


def check_available(r: ResolvedRef) -> None:
    """Raise the one-line error unless the hub model's config is in the local cache or the hub has the repo;
    asked without transformers, so a mistyped ref fails before the heavy imports."""
    if r.kind not in ("preset", "hub"):
        return
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(r.source, "config.json"), str):
        return
    why = hub_status(r.source)
    if why is not None:
        raise _not_available(r, why)


def fetch(r: ResolvedRef, load: Callable[..., T], **kwargs) -> T:
    """Call a `from_pretrained` on a resolved directory or hub id: local files first, the hub only when
    `hub_status` says the repo is there."""
    if r.kind == "dir":
        try:
            return load(r.source, local_files_only=True, **kwargs)
        except (OSError, ValueError) as e:  # missing files; unknown model type or no classification head
            raise UserError(f"model {r.ref!r}: cannot load from the directory: {str(e).splitlines()[0]}") from None
    try:
        return load(r.source, local_files_only=True, **kwargs)
    except OSError:
        why = hub_status(r.source)
    if why is not None:
        raise _not_available(r, why)
    try:
        return load(r.source, **kwargs)
    except OSError as e:  # the repo exists, but a file is gated, missing, or the link broke mid-download
        raise UserError(f"model {r.ref!r} ({r.source}): download failed: {str(e).splitlines()[0]}") from None
