"""Input validation shared by the LLM-unlearning metrics (private)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

#: Tolerance above 0 accepted for log-likelihoods (which are ``<= 0`` in exact arithmetic).
LOG_LIKELIHOOD_ATOL = 1e-4


def _check_float_tensor(x: Any, name: str, shape_doc: str, ndim: int) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"`{name}` should be a torch.Tensor of shape {shape_doc}, got {type(x).__name__}.")
    if x.ndim != ndim:
        raise ValueError(f"`{name}` should be {ndim}-D with shape {shape_doc}, got shape {tuple(x.shape)}.")
    if not x.is_floating_point():
        raise ValueError(f"`{name}` should be a floating-point tensor, got dtype {x.dtype}.")
    return x


def _check_finite(x: Tensor, name: str, valid: Tensor | None = None) -> None:
    bad = ~torch.isfinite(x)
    if valid is not None:
        bad &= valid
    if bool(bad.any()):
        where = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(f"`{name}` contains NaN or infinite values at unmasked positions, first at index {where}.")


def _check_log_likelihood(x: Tensor, name: str, valid: Tensor | None = None) -> None:
    """Finite and ``<= LOG_LIKELIHOOD_ATOL`` where ``valid`` (all positions if ``None``)."""
    _check_finite(x, name, valid)
    vals = x if valid is None else x[valid]
    if vals.numel() and vals.max().item() > LOG_LIKELIHOOD_ATOL:
        raise ValueError(
            f"`{name}` should hold log-likelihoods (<= 0), got a maximum of {vals.max().item():.4g}. "
            "Did you pass a loss (negative log-likelihood)? Negate it."
        )


def _check_mask(mask: Any, like: Tensor, like_name: str, mask_name: str = "mask") -> Tensor:
    """Return ``mask`` as a bool tensor (all ``True`` if ``None``); every row must have an unmasked position."""
    if mask is None:
        valid = torch.ones(like.shape, dtype=torch.bool, device=like.device)
    else:
        if not isinstance(mask, Tensor):
            raise TypeError(
                f"`{mask_name}` should be a torch.Tensor of shape {tuple(like.shape)} or None, got {type(mask).__name__}."
            )
        if mask.shape != like.shape:
            raise ValueError(
                f"`{mask_name}` should have the shape of `{like_name}` {tuple(like.shape)}, got {tuple(mask.shape)}."
            )
        if mask.dtype == torch.bool:
            valid = mask
        elif not mask.is_floating_point() and not mask.is_complex() and bool(((mask == 0) | (mask == 1)).all()):
            valid = mask.bool()
        else:
            raise ValueError(f"`{mask_name}` should be a bool tensor or hold only 0/1 integers, got dtype {mask.dtype}.")
    if valid.ndim >= 1 and valid.shape[0] > 0:
        empty = ~valid.reshape(valid.shape[0], -1).any(dim=1)
        if bool(empty.any()):
            raise ValueError(
                f"Every row of `{mask_name}` needs at least one unmasked position; row {int(empty.nonzero()[0])} has none."
            )
    return valid


def _check_token_inputs(token_log_probs: Any, mask: Any) -> tuple[Tensor, Tensor]:
    """Validate ``[N, T]`` log-probs and mask; return float64 log-probs (masked entries zeroed) and the bool mask."""
    lp = _check_float_tensor(token_log_probs, "token_log_probs", "[N, T]", 2)
    valid = _check_mask(mask, lp, "token_log_probs")
    _check_log_likelihood(lp, "token_log_probs", valid)
    lp = torch.where(valid, lp.detach().to(torch.float64), torch.zeros((), dtype=torch.float64, device=lp.device))
    return lp, valid


def _as_1d_float(x: Any, name: str) -> Tensor:
    """A 1-D float64 CPU tensor from a tensor, array or sequence of numbers (finite, non-empty)."""
    if isinstance(x, Tensor):
        t = x.detach()
    else:
        try:
            t = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"`{name}` should be a 1-D tensor or sequence of numbers, got {type(x).__name__}.") from err
    if t.ndim != 1:
        raise ValueError(f"`{name}` should be 1-D, got shape {tuple(t.shape)}.")
    if t.dtype == torch.bool or t.is_complex():
        raise ValueError(f"`{name}` should hold real numbers, got dtype {t.dtype}.")
    if t.numel() == 0:
        raise ValueError(f"`{name}` should not be empty.")
    t = t.to(torch.float64).cpu()
    _check_finite(t, name)
    return t


def _check_texts(texts: Any, name: str, n: int | None = None) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise TypeError(f"`{name}` should be a sequence of strings, got {type(texts).__name__}.")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"`{name}[{i}]` should be a str, got {type(t).__name__}.")
    if n is not None and len(texts) != n:
        raise ValueError(f"`{name}` should have {n} entries, got {len(texts)}.")
    return list(texts)
