"""Action distributions: a categorical with an action mask, and a diagonal Gaussian."""

from __future__ import annotations

import torch

_NEG = -1e9  # a masked logit: exp() is exactly 0 in float32, and log_softmax stays finite


class MaskedCategorical:
    """A categorical over the last dimension of ``logits``; ``mask`` (bool, True = allowed).

    Masked actions get probability 0 (never sampled) and contribute nothing to the entropy.
    With no mask it is the plain categorical, computed exactly as ``log_softmax`` would.
    """

    def __init__(self, logits: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        if mask is not None:
            if not bool(mask.any(-1).all()):
                raise ValueError("every row of the action mask must allow at least one action")
            logits = logits.masked_fill(~mask.bool(), _NEG)
        self.mask = mask
        self.logp_all = torch.log_softmax(logits, -1)

    @property
    def probs(self) -> torch.Tensor:
        return self.logp_all.exp()

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        flat = self.probs.reshape(-1, self.probs.shape[-1])
        a = torch.multinomial(flat, 1, generator=generator).squeeze(1)
        return a.reshape(self.probs.shape[:-1])

    def greedy(self) -> torch.Tensor:
        return self.logp_all.argmax(-1)

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        return self.logp_all.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        p = self.probs
        terms = p * self.logp_all
        if self.mask is not None:
            terms = terms.masked_fill(~self.mask.bool(), 0.0)
        return -terms.sum(-1)


def diag_gaussian(mean: torch.Tensor, log_std: torch.Tensor) -> torch.distributions.Normal:
    """A diagonal Gaussian; sum ``log_prob`` and ``entropy`` over the last dimension."""
    return torch.distributions.Normal(mean, log_std.exp())
