"""Mode convexity: is the mean of k models better or worse than its members (the Jensen gap), and does a soup beat
its best ingredient (Wortsman et al. 2022)?"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from qlandscape.core.objective import Objective
from qlandscape.merging.alignment import align
from qlandscape.merging.merges import average, greedy_soup
from qlandscape.merging.parameters import check_models
from qlandscape.metrics.modes.results import ConvexityResult
from qlandscape.models.classical import has_batch_norm, recompute_bn_statistics

__all__ = ["mode_convexity"]


def _scores(model: nn.Module, x: Tensor, y: Tensor, loss: str, x_stats: Tensor | None) -> tuple[float, float]:
    if x_stats is not None:
        model = recompute_bn_statistics(model, None, x_stats)
    objective = Objective(model, x, y, loss)
    return float(objective.loss()), objective.error()


def mode_convexity(
    models: Sequence[nn.Module],
    x_eval: Tensor,
    y_eval: Tensor,
    *,
    x_select: Tensor | None = None,
    y_select: Tensor | None = None,
    x_stats: Tensor | None = None,
    align_first: bool = False,
    loss: str = "cross_entropy",
    split: str = "test",
) -> ConvexityResult:
    """The Jensen gap of the equal-weight mean of ``models`` on (x_eval, y_eval), and the uniform and greedy soups
        against the best ingredient on the same split. The greedy soup's ingredients are chosen on (x_select, y_select)
    (default: the evaluation split itself, where the greedy soup cannot score below its best ingredient), and the best
    ingredient is the one best there. ``align_first``: align every model to the first before
        averaging (for models from different seeds; children of one parent need none). With batch norm, statistics
        are recomputed on ``x_stats`` for every model scored."""
    models = check_models(models, minimum=2)
    if has_batch_norm(models[0]) and x_stats is None:
        x_stats = x_eval  # a merged network's statistics are stale; the evaluation inputs are the fallback
    x_stats = None if not has_batch_norm(models[0]) else torch.as_tensor(x_stats)
    if align_first:
        models = [models[0]] + [align(models[0], m) for m in models[1:]]
    members = np.array([_scores(m, x_eval, y_eval, loss, x_stats) for m in models])
    mean_model = average(models, x_stats=x_stats)
    mean_loss, mean_error = _scores(mean_model, x_eval, y_eval, loss, None)
    selecting = x_select is not None or y_select is not None
    x_sel, y_sel = (x_select, y_select) if selecting else (x_eval, y_eval)
    soup, recipe = greedy_soup(models, x_sel, y_sel, loss=loss, x_stats=x_stats)
    greedy_accuracy = 1.0 - _scores(soup, x_eval, y_eval, loss, None)[1]
    best = 1.0 - float(members[recipe.order[0], 1])  # the ingredient best on the selection split, scored on eval
    return ConvexityResult(
        k=len(models),
        member_loss=members[:, 0],
        member_error=members[:, 1],
        mean_model_loss=mean_loss,
        mean_model_error=mean_error,
        jensen_gap_loss=mean_loss - float(members[:, 0].mean()),
        jensen_gap_error=mean_error - float(members[:, 1].mean()),
        ingredient_accuracy=1.0 - members[:, 1],
        uniform_soup_accuracy=1.0 - mean_error,
        greedy_soup_accuracy=greedy_accuracy,
        greedy_chosen=recipe.chosen,
        best_ingredient_accuracy=best,
        soup_minus_best=greedy_accuracy - best,
        aligned=bool(align_first),
        selection_split="held-out" if selecting else split,
        split=split,
        loss_name=str(loss),
    )
