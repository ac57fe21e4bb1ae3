"""Training a quality scorer (`hybridmix train-scorer`): a logistic model over the scorer's features,
fitted with L-BFGS, evaluated with whole groups (generators) held out. No Beam here.

The model is logit P(label) = X beta + Z gamma + b + sum of nuisance offsets. Nuisance columns
(which judge, which prompt) explain part of every label without saying anything about the text;
fitting them apart keeps them out of the text weights, and the score leaves them out.

Judges can disagree about what makes an answer good. With stratum weights, one model is fitted per
judge (stratum) and the score is their weighted sum, each model's log-odds first standardized on its
own training answers: still one linear model, so inference is unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import scipy.sparse as sp
from scipy.optimize import minimize
from scipy.stats import rankdata, spearmanr

from hybridmix.transforms.batches import list_array
from hybridmix.transforms.filters import TextView
from hybridmix.transforms.scorer import TRAINED_FEATURES, Scorer, dense_features, hashed_features
from hybridmix.transforms.text import analyze, scripts, stable_hash64

QUANTILES = 1001


@dataclass(frozen=True)
class Features:
    hashed: sp.csr_matrix
    dense: np.ndarray  # raw, before standardization
    log_chars: np.ndarray


def featurize(texts: pa.Array, bits: int, dense_names: tuple[str, ...]) -> Features:
    analysis = analyze(texts)
    view = TextView(texts, None, list_array(analysis.word_hashes, analysis.word_offsets), scripts(analysis))
    indptr, indices, values = hashed_features(analysis.word_hashes, analysis.word_offsets, bits)
    hashed = sp.csr_matrix((values.astype(np.float64), indices, indptr), shape=(len(texts), 1 << bits))
    return Features(hashed, dense_features(view, dense_names), np.log1p(view.stat("code_points")))


@dataclass(frozen=True)
class Fitted:
    beta: np.ndarray
    gamma: np.ndarray
    bias: float
    mean: np.ndarray
    scale: np.ndarray
    clip: float

    def log_odds(self, f: Features, rows: np.ndarray) -> np.ndarray:
        z = f.hashed[rows] @ self.beta + self.bias
        if len(self.gamma):
            z = z + np.clip((f.dense[rows] - self.mean) / self.scale, -self.clip, self.clip) @ self.gamma
        return z


def _standardization(f: Features, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if not f.dense.shape[1]:
        return np.zeros(0), np.zeros(0)
    return f.dense[rows].mean(0), f.dense[rows].std(0) + 1e-9


def fit(f: Features, rows: np.ndarray, target: np.ndarray, nuisance: list[np.ndarray], c: float,
        dense_l2: float, clip: float, maxiter: int,
        standardization: tuple[np.ndarray, np.ndarray] | None = None) -> Fitted:
    """Minimize c * sum(logistic loss) + |beta|^2 / 2 + dense_l2 * |gamma|^2 / 2 (+ a tiny ridge on offsets)."""
    x = f.hashed[rows]
    mean, scale = standardization or _standardization(f, rows)
    z_dense = np.clip((f.dense[rows] - mean) / scale, -clip, clip)
    t = target[rows]
    codes = [np.unique(col[rows], return_inverse=True)[1] for col in nuisance]
    levels = [int(code.max()) + 1 for code in codes]
    sizes = [x.shape[1], z_dense.shape[1], 1] + levels
    cuts = np.cumsum([0] + sizes)
    xt = x.T.tocsr()

    def objective(v: np.ndarray) -> tuple[float, np.ndarray]:
        parts = [v[cuts[k]:cuts[k + 1]] for k in range(len(sizes))]
        beta, gamma, b, offsets = parts[0], parts[1], parts[2][0], parts[3:]
        z = x @ beta + z_dense @ gamma + b
        for code, off in zip(codes, offsets):
            z = z + off[code]
        soft = np.logaddexp(0.0, z)
        r = c * (np.exp(z - soft) - t)
        loss = c * np.sum(soft - t * z) + 0.5 * beta @ beta + 0.5 * dense_l2 * gamma @ gamma
        grads = [xt @ r + beta, z_dense.T @ r + dense_l2 * gamma, np.array([r.sum()])]
        for code, off, n in zip(codes, offsets, levels):
            loss += 0.5e-3 * off @ off
            grads.append(np.bincount(code, r, n) + 1e-3 * off)
        return loss, np.concatenate(grads)

    result = minimize(objective, np.zeros(cuts[-1]), jac=True, method="L-BFGS-B",
                      options={"maxiter": maxiter, "maxcor": 20})
    v = result.x
    return Fitted(v[:cuts[1]], v[cuts[1]:cuts[2]], float(v[cuts[2]]), mean, scale, clip)


class UnknownStratum(ValueError):
    """A stratum weight names a value the stratum column does not have: the caller's setting, not the data."""


def fit_strata(f: Features, rows: np.ndarray, target: np.ndarray, nuisance: list[np.ndarray], strata: np.ndarray,
               weights: dict[str, float], c: float, dense_l2: float, clip: float, maxiter: int) -> Fitted:
    """One model per weighted stratum, on that stratum's rows; their standardized log-odds, summed by weight.

    Standardizing puts the judges on one scale (one judge's labels may be far more lopsided than
    another's). The dense features share one standardization, so the sum is again a `Fitted`.
    """
    standardization = _standardization(f, rows)
    beta, gamma, bias = 0.0, 0.0, 0.0
    for value, weight in weights.items():
        own = rows[strata[rows] == value]
        if len(own) < 2 or len(np.unique(target[own] > 0.5)) < 2:
            raise ValueError(f"stratum {value!r}: {len(own)} training rows, not both better and worse ones")
        model = fit(f, own, target, nuisance, c, dense_l2, clip, maxiter, standardization)
        z = model.log_odds(f, own)
        spread = float(z.std()) or 1.0
        beta = beta + weight / spread * model.beta
        gamma = gamma + weight / spread * model.gamma
        bias += weight * (model.bias - float(z.mean())) / spread
    return Fitted(np.asarray(beta), np.asarray(gamma), bias, *standardization, clip)


def auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney), ties counted half."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auc_interval(a: float, positive: np.ndarray) -> list[float]:
    """An approximate 95 % interval of an AUC from its numbers of positives and negatives (Hanley and
    McNeil, 1982): how far a held-out AUC from few labelled rows can be from the scorer's true one."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
    half = 1.96 * float(np.sqrt(max(var, 0.0)))
    return [round(max(0.0, a - half), 4), round(min(1.0, a + half), 4)]


def _within(scores: np.ndarray, positive: np.ndarray, strata: np.ndarray) -> float | None:
    """AUC inside each stratum (one judge), averaged by stratum size."""
    values, weights = [], []
    for level in np.unique(strata):
        rows = strata == level
        a = auc(scores[rows], positive[rows])
        if a is not None:
            values.append(a)
            weights.append(int(rows.sum()))
    return float(np.average(values, weights=weights)) if values else None


def training_digest(texts: pa.Array, target: np.ndarray, groups: np.ndarray | None) -> str:
    h = hashlib.sha256()
    for text in texts.to_pylist():
        h.update(text.encode("utf-8") + b"\x00")
    h.update(np.ascontiguousarray(target, np.float64).tobytes())
    if groups is not None:
        h.update("\x00".join(map(str, groups)).encode())
    return h.hexdigest()


def fold_of(values: np.ndarray, folds: int, salt: str) -> np.ndarray:
    """A fold number per row from a seeded hash of its value: equal values share a fold."""
    keys = stable_hash64([str(v) for v in values], salt)
    return (keys % np.uint64(folds)).astype(np.int64)


def train_scorer(
    texts: pa.Array,
    target: np.ndarray,
    groups: np.ndarray | None,
    nuisance: list[np.ndarray],
    *,
    holdout: np.ndarray | None = None,
    folds: int = 5,
    bits: int = 18,
    dense_names: tuple[str, ...] = TRAINED_FEATURES,
    c: float = 1.0,
    dense_l2: float = 1.0,
    clip: float = 5.0,
    maxiter: int = 300,
    strata: np.ndarray | None = None,
    stratum_weights: dict[str, float] | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[Scorer, dict]:
    """Fit a scorer on every row, after measuring it on folds it did not see.

    `target` is in [0, 1] (a label, or a judge's preference scaled there). `groups` (e.g. the
    generator) are split into `folds` folds; with `holdout` (e.g. the prompt) its values are too,
    and a document is scored by a model trained on neither its group's fold nor its holdout's
    fold: nothing of its generator, and nothing of its prompt, which a model could otherwise learn
    to be an easy or a hard one; with one group there are none, and `held_out.skipped` says so.
    `strata` (e.g. the judge) split the held-out AUC; with `stratum_weights` (stratum value ->
    weight) one model is fitted per weighted stratum and the score is their weighted sum
    (`fit_strata`); rows of other strata are not trained on. `progress` gets a line before each fit.
    """
    say = progress or (lambda _message: None)
    if stratum_weights:
        if strata is None:
            raise ValueError("stratum weights need a stratum column")
        present = sorted(set(np.unique(strata).tolist()))
        missing = sorted(set(stratum_weights) - set(present))
        if missing:
            raise UnknownStratum(f"no value {', '.join(missing)} (values present: {', '.join(present[:10])})")
        if any(not w > 0 for w in stratum_weights.values()):
            raise ValueError("stratum weights must be above 0")

    def fitted(rows: np.ndarray) -> Fitted:
        if stratum_weights:
            return fit_strata(f, rows, target, nuisance, strata, stratum_weights, c, dense_l2, clip, maxiter)
        return fit(f, rows, target, nuisance, c, dense_l2, clip, maxiter)

    say(f"features of {len(texts):,} texts")
    f = featurize(texts, bits, dense_names)
    n = len(target)
    positive = target > 0.5
    metrics: dict = {"documents": n, "positive_share": round(float(positive.mean()), 4)}
    if groups is not None and len(np.unique(groups)) < 2:
        # Holding out the only group leaves nothing to train on: the metrics say why they are missing.
        metrics["held_out"] = {"groups": 1, "auc": None,
                               "skipped": "held-out metrics need 2 groups or more; the group column has 1"}
    elif groups is not None:
        group_fold = fold_of(groups, min(folds, len(np.unique(groups))), "scorer/group")
        holdout_fold = fold_of(holdout, folds, "scorer/holdout") if holdout is not None else np.zeros(n, np.int64)
        held_out = np.zeros(n)
        cells = [(g, h) for g in np.unique(group_fold) for h in np.unique(holdout_fold)]
        for k, (g, h) in enumerate(cells, 1):
            test = (group_fold == g) & (holdout_fold == h)
            train = (group_fold != g) & ((holdout_fold != h) if holdout is not None else True)
            if not test.any():
                continue
            say(f"held-out fit {k} of {len(cells)} ({int(train.sum()):,} rows in, {int(test.sum()):,} scored)")
            held_out[test] = fitted(np.flatnonzero(train)).log_odds(f, np.flatnonzero(test))
        by_group = {str(g): auc(held_out[groups == g], positive[groups == g]) for g in np.unique(groups)}
        overall = auc(held_out, positive)
        metrics["held_out"] = {
            "folds": (f"{len(np.unique(group_fold))} group folds" + (
                f" x {len(np.unique(holdout_fold))} holdout folds" if holdout is not None else "")
                + ": each document scored by a model trained without its group (and holdout) fold"),
            "groups": len(by_group),
            "auc": overall,
            "auc_interval_95": auc_interval(overall, positive) if overall is not None else None,
            "auc_within_strata": _within(held_out, positive, strata) if strata is not None else None,
            # Answers to the same prompt under the same judge: what a scorer must rank, net of the prompt.
            "auc_within_holdout_and_strata": _within(
                held_out, positive, np.char.add(np.char.add(strata.astype(str), "|"), holdout.astype(str))
                if strata is not None else holdout.astype(str)) if holdout is not None else None,
            "auc_of_length_within_holdout_and_strata": _within(
                f.log_chars, positive, np.char.add(np.char.add(strata.astype(str), "|"), holdout.astype(str))
                if strata is not None else holdout.astype(str)) if holdout is not None else None,
            "auc_of_length_alone": auc(f.log_chars, positive),
            "auc_by_group": {g: None if a is None else round(a, 4) for g, a in by_group.items()},
            "spearman_with_length": round(float(spearmanr(held_out, f.log_chars).statistic), 4),
        }
    say(f"final fit on all {n:,} rows")
    model = fitted(np.arange(n))
    z = model.log_odds(f, np.arange(n))
    quantiles = np.quantile(z, np.linspace(0.0, 1.0, QUANTILES))
    # Strictly increasing, so the score map is a function even where many documents tie.
    quantiles = quantiles + np.arange(QUANTILES) * 1e-9
    scorer = Scorer(
        bits=bits,
        hashed_weights=model.beta.astype(np.float32),
        dense_names=dense_names,
        dense_mean=model.mean,
        dense_scale=model.scale,
        dense_weights=model.gamma,
        clip=clip,
        bias=model.bias,
        quantiles=quantiles,
        meta={
            "training": {"documents": n, "digest": training_digest(texts, target, groups),
                         "parameters": {"bits": bits, "c": c, "dense_l2": dense_l2, "clip": clip,
                                        "nuisance_columns": len(nuisance), "maxiter": maxiter,
                                        "stratum_weights": dict(stratum_weights or {})}},
            "metrics": metrics,
        },
    )
    return scorer, metrics

