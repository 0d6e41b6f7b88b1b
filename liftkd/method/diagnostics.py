"""Why an objective trains as it does: the gradient each of its terms puts on the student's output.

For a batch, ``gradient_terms(objective, eps, eS, eT)`` differentiates each term of the objective
with respect to the student's prediction eS (the network is left out: what matters here is the
direction each term asks eS to move) and returns, averaged over the samples,

- ``grad_<term>``: the norm of the per-sample gradient of that term, as it enters the loss (LIFT:
  ``task``, ``coarse``, ``fine`` = w * L_fine; OutKD: ``task``, ``outkd``; w/o KD: ``task``);
- ``cos_coarse`` (LIFT, PLACE): the cosine between the descent direction of the coarse term and
  ``eT - eS``, the direction that closes the KD error (``cos_outkd`` likewise, 1 by construction).

The KD loop logs them every ``distill.diagnose_every`` steps into the job's history.
"""

from __future__ import annotations

import torch

from liftkd.method.lift import LIFT
from liftkd.method.losses import Objective, OutFeatKD, OutKD, sq_sum, task_loss


def objective_terms(objective: Objective, eps, eS, eT, progress=None) -> dict[str, torch.Tensor]:
    """The output terms of ``objective`` (the FitNet term aside), weighted as in its loss."""
    terms = {"task": task_loss(eS, eps)}
    if isinstance(objective, LIFT):
        L_coarse, L_fine, w = objective.coarse_fine(eS, eT, progress)
        if objective.terms in ("both", "coarse"):
            terms["coarse"] = objective.lam * L_coarse
        if objective.terms in ("both", "fine"):
            terms["fine"] = objective.lam * w.detach() * L_fine
    elif isinstance(objective, OutKD | OutFeatKD):
        terms["outkd"] = objective.lam * sq_sum(eS, eT)
    return terms


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1), dim=1, eps=1e-12)


def gradient_terms(objective: Objective, eps, eS, eT, progress=None) -> dict[str, float]:
    """Per-sample gradient norms of each term with respect to eS, and the coarse term's cosine
    with ``eT - eS`` (see the module docstring)."""
    x = eS.detach().requires_grad_()
    eT = eT.detach()
    terms = objective_terms(objective, eps.detach(), x, eT, progress)
    B = x.shape[0]
    out = {}
    with torch.enable_grad():
        for name, term in terms.items():
            (g,) = torch.autograd.grad(term, x, retain_graph=True)
            g = g * B  # the loss averages over the batch: one sample's own gradient
            out[f"grad_{name}"] = float(g.flatten(1).norm(dim=1).mean())
            if name in ("coarse", "outkd"):
                out[f"cos_{name}"] = float(_cosine(-g, eT - x.detach()).mean())
    return out
