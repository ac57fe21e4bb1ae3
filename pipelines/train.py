"""`hybridmix train-scorer`: fit a quality scorer from labelled Parquet and write its file."""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hybridmix.pipelines.arguments import whole_number
from hybridmix.schemas.errors import ConfigError, DataError
from hybridmix.transforms.scorer import TRAINED_FEATURES

log = logging.getLogger(__name__)


def add_parser(sub, parents: list[argparse.ArgumentParser], **how) -> None:
    """`how`: the CLI's epilog and formatter, as its other commands have them."""
    train = sub.add_parser(
        "train-scorer",
        parents=parents,
        **how,
        help="fit a quality scorer from labelled documents",
        description=(
            "Fit a quality scorer (hashed word 1-2-grams and document statistics, logistic) from Parquet "
            "files with a text column and a label, report its quality with whole groups held out (never "
            "the same generator in training and test), and write it for quality.scorer.path."),
    )
    train.add_argument("data", nargs="+", help="Parquet files or globs with the labelled documents")
    train.add_argument("--output", required=True, help="scorer file to write (.npz)")
    train.add_argument("--text-column", default="text", help="the column holding the texts (default text)")
    train.add_argument("--label-column", required=True,
                       help="what the scorer learns: booleans, or numbers scaled by --label-range to [0, 1]")
    train.add_argument("--label-range", nargs=2, type=float, metavar=("WORST", "BEST"), default=(0.0, 1.0),
                       help="the label's worst and best values (default 0 1); e.g. 1 2 for AlpacaEval preferences, "
                            "5 1 for a rating where 1 is best (lower is better)")
    train.add_argument("--group-column",
                       help="held-out folds: a document is scored by a model trained without its group (generator)")
    train.add_argument("--holdout-column",
                       help="with --group-column, also hold out this column's values (the prompt), so the held-out "
                            "metrics do not reward learning which prompts are easy")
    # One fold leaves nothing to train on while it is scored: the AUC came out NaN.
    train.add_argument("--folds", type=whole_number(2), default=5,
                       help="folds of each held-out column (default 5; at least 2). Values are dealt to folds by a "
                            "hash, so with few groups a fold may get none: the metrics say how many folds held any")
    train.add_argument("--nuisance-column", action="append", default=[],
                       help="a column that explains labels without saying anything about the text (the judge, "
                            "the prompt): fitted apart, left out of the score; repeatable")
    train.add_argument("--stratum-column", help="report the held-out AUC within each value of this column too")
    train.add_argument("--stratum-weight", action="append", default=[], metavar="VALUE=WEIGHT",
                       help="fit one model per named value of --stratum-column (one per judge, when judges disagree "
                            "about what is good) and score with their weighted sum; rows of unnamed values are "
                            "not trained on; repeatable")
    train.add_argument("--bits", type=int, default=18, help="hashed features: 2^BITS buckets (default 18)")
    train.add_argument("--c", type=float, default=1.0, help="inverse strength of the L2 penalty (default 1)")


def _read(patterns: list[str], columns: dict[str, str]) -> pa.Table:
    """The `columns` (column -> the flag that names it) of every file the patterns match."""
    paths = sorted({p for pattern in patterns for p in (glob.glob(pattern) or [pattern])})
    tables = []
    for path in paths:
        try:
            tables.append(pq.read_table(path, columns=list(columns)))
        except FileNotFoundError:
            raise DataError(f"{path}: no such file") from None
        except (OSError, pa.ArrowException) as exc:
            raise DataError(_missing_columns(path, columns) or (
                f"{path}: cannot read as Parquet with columns {', '.join(columns)}: {exc}")) from None
    return pa.concat_tables(tables, promote_options="default")


def _missing_columns(path: str, columns: dict[str, str]) -> str | None:
    """Which wanted columns a file lacks, and the ones it has; None when it has them all or cannot be read.

    Arrow's own message ("No match for FieldRef.Name(score) in id: string ...") spans a line per
    column, and only its first line reaches the one-line error.
    """
    try:
        present = pq.read_schema(path).names
    except (OSError, pa.ArrowException):
        return None
    missing = [f"{column!r} ({flag})" for column, flag in columns.items() if column not in present]
    if not missing:
        return None
    shown = ", ".join(present[:30]) + (f", ... ({len(present)} in all)" if len(present) > 30 else "")
    return f"{path}: no column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; its columns: {shown}"


def _stratum_weights(items: list[str]) -> dict[str, float]:
    weights: dict[str, float] = {}
    for item in items:
        value, sep, number = item.rpartition("=")
        try:
            weight = float(number)
        except ValueError:
            weight = float("nan")
        if not sep or not value or not weight > 0 or weight == float("inf"):
            raise ConfigError(f"--stratum-weight: expected VALUE=WEIGHT with a weight above 0, got {item!r}")
        if value in weights:
            raise ConfigError(f"--stratum-weight: {value!r} given twice")
        weights[value] = weight
    return weights


def cmd_train(args: argparse.Namespace) -> int:
    # Worst and best in either order: a rating where 1 is best is `--label-range 5 1`.
    low, high = args.label_range
    if high == low:
        raise ConfigError(f"--label-range: WORST and BEST must differ, got {low:g} {high:g}")
    if not 4 <= args.bits <= 24:
        raise ConfigError(f"--bits: between 4 and 24, got {args.bits}")
    weights = _stratum_weights(args.stratum_weight)
    if weights and not args.stratum_column:
        raise ConfigError("--stratum-weight needs --stratum-column")
    if args.holdout_column and not args.group_column:
        # Held-out metrics hold out whole groups; the holdout column only narrows what a fold trains on.
        raise ConfigError("--holdout-column needs --group-column (held-out folds are of groups, and of the "
                          "holdout column's values within them)")
    flags = [("--text-column", args.text_column), ("--label-column", args.label_column),
             ("--group-column", args.group_column), ("--holdout-column", args.holdout_column),
             ("--stratum-column", args.stratum_column), *[("--nuisance-column", c) for c in args.nuisance_column]]
    columns: dict[str, str] = {}
    for flag, column in flags:
        if column:
            columns.setdefault(column, flag)
    table = _read(args.data, columns)
    usable = pc.and_(pc.is_valid(table.column(args.text_column)), pc.is_valid(table.column(args.label_column)))
    if pa.types.is_floating(table.schema.field(args.label_column).type):
        # pandas writes a missing number as NaN, not null; one NaN label zeroed every weight of the fit.
        usable = pc.and_(usable, pc.invert(pc.fill_null(pc.is_nan(table.column(args.label_column)), True)))
    skipped = table.num_rows - int(pc.sum(usable).as_py() or 0)
    table = table.filter(usable)
    if table.num_rows < 10:
        raise DataError(f"{table.num_rows} labelled rows; a scorer needs more")
    label = table.column(args.label_column).combine_chunks()
    if not (pa.types.is_boolean(label.type) or pa.types.is_integer(label.type) or pa.types.is_floating(label.type)):
        raise DataError(f"--label-column {args.label_column}: type {label.type}; labels are booleans or numbers "
                        "(0/1, or a preference within --label-range)")
    values = label.cast(pa.float64()).to_numpy(zero_copy_only=False)
    target = (values - low) / (high - low)
    if (target < -1e-9).any() or (target > 1 + 1e-9).any():
        raise DataError(f"--label-column {args.label_column}: values outside --label-range {low:g} {high:g}")
    if target.min() == target.max():
        raise DataError(f"--label-column {args.label_column}: every usable row has the label {values[0]:g}; "
                        "a scorer learns from labels that differ")

    def column(name: str | None) -> np.ndarray | None:
        return None if name is None else np.asarray(table.column(name).cast(pa.string()).fill_null("").to_pylist())

    # scipy is slow to import and only training needs it: every other command starts without it.
    from hybridmix.transforms.scorer_fit import UnknownStratum, train_scorer

    def say(message: str) -> None:
        # Fits take minutes on a few thousand long texts: say where it is, as `run` does.
        if not getattr(args, "quiet", False):
            print(f"hybridmix train-scorer: {message}", file=sys.stderr, flush=True)

    say(f"{table.num_rows:,} labelled rows read ({skipped:,} without text or label, or with a NaN label, skipped)")
    try:
        scorer, metrics = train_scorer(
            table.column(args.text_column).combine_chunks().cast(pa.string()),
            np.clip(target, 0.0, 1.0),
            column(args.group_column),
            [column(c) for c in args.nuisance_column],
            holdout=column(args.holdout_column),
            folds=args.folds,
            bits=args.bits,
            dense_names=TRAINED_FEATURES,
            c=args.c,
            strata=column(args.stratum_column),
            stratum_weights=weights,
            progress=say,
        )
    except UnknownStratum as exc:
        raise ConfigError(f"--stratum-weight: {args.stratum_column} has {exc}") from None
    except ValueError as exc:  # a fold or stratum the data cannot fit
        raise DataError(str(exc)) from None
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    scorer.meta["training"]["label"] = {"column": args.label_column, "range": [low, high],
                                        "groups": args.group_column, "holdout": args.holdout_column,
                                        "nuisance": args.nuisance_column, "strata": args.stratum_column,
                                        "stratum_weights": weights}
    scorer.save(args.output)
    held_out = metrics.get("held_out") or {}
    why = held_out.get("skipped")
    if why:
        # A warning, not progress: -q must not hide that the scorer comes with no held-out measure.
        log.warning("--group-column %s: %s, so none are reported", args.group_column, why)
    interval = held_out.get("auc_interval_95")
    if interval is not None and (interval[0] <= 0.5 or interval[1] - interval[0] > 0.2):
        # A dozen labelled rows give a held-out AUC anywhere from 0.1 to 0.9 whatever the scorer learned.
        log.warning("held-out AUC %.3f (95 %% interval %.2f-%.2f) from %d labelled rows: too few to measure this "
                    "scorer; label more rows before trusting it", held_out["auc"], *interval, metrics["documents"])
    print(json.dumps({"output": args.output, "bytes": os.path.getsize(args.output), "skipped_rows": skipped,
                      **metrics}, indent=2))
    return 0
