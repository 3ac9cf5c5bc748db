"""``rnnkit classify``: sequence classification from UCR/UEA ``.ts`` files or CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rnnkit.apps.cli.app import (
    cli,
    exit_if_interrupted,
    fit_options,
    handle_errors,
    prepare_run,
    report,
    training,
)
from rnnkit.apps.cli.options import run_dir_option, run_options
from rnnkit.apps.cli.runs import MODEL, CLIError, RunFolder, draw_plot

DEFAULTS: dict[str, Any] = {
    "train": "",
    "test": "",
    "label": "label",
    "hidden_size": 64,
    "num_layers": 1,
    "cell": "lstm",
    "bidirectional": False,
    "pooling": "last",
    "normalize": "series",
    "window": 1,
    "stride": 0,  # 0: the window
    "lr_schedule": "none",
    "dropout": 0.0,
    "zoneout": 0.0,
    "epochs": 100,
    "batch_size": 32,
    "lr": 3e-3,
    "weight_decay": 0.0,
    "ensemble": 1,
    "seed": 0,
}
MODEL_KEYS = (
    "hidden_size",
    "num_layers",
    "cell",
    "bidirectional",
    "pooling",
    "normalize",
    "window",
    "stride",
    "lr_schedule",
    "dropout",
    "zoneout",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "ensemble",
    "seed",
)


def load_dataset(path: str, label: str):
    """A ``.ts`` file (sktime/aeon format) or a CSV of one series per row."""
    from rnnkit.data import load_classification_csv, load_ts

    if not path:
        raise CLIError("--train and --test are required (or set them in --config)")
    suffix = Path(path).suffix.lower()
    if suffix == ".ts":
        return load_ts(path)
    if suffix == ".csv":
        return load_classification_csv(path, label=label)
    raise CLIError(f"{path}: expected a .ts or .csv file")


def _print_evaluation(scores: dict[str, Any]) -> str:
    """Print accuracy, macro-F1 and the confusion matrix; return them as Markdown."""
    classes = [str(c) for c in scores["classes"]]
    cm = scores["confusion_matrix"]
    width = max(6, *(len(c) for c in classes))
    lines = [
        f"accuracy: {scores['accuracy']:.4f}",
        f"macro-F1: {scores['macro_f1']:.4f}",
        "confusion matrix (rows: true class, columns: predicted):",
        " " * width + " " + " ".join(f"{c:>{width}}" for c in classes),
    ]
    for name, row in zip(classes, cm):
        lines.append(f"{name:>{width}} " + " ".join(f"{int(v):>{width}}" for v in row))
    click.echo("\n".join(lines))
    return "\n".join(lines)


@cli.group()
def classify() -> None:
    """Classify whole sequences (univariate or multivariate, any lengths).

    \b
    rnnkit classify train --train GunPoint_TRAIN.ts --test GunPoint_TEST.ts
    rnnkit classify eval --run runs/NAME --test other.ts
    """


@classify.command("train")
@click.option(
    "--train",
    "train_path",
    type=click.Path(dir_okay=False),
    help="Training set: a UCR/UEA .ts file, or a CSV with one series per row.",
)
@click.option("--test", "test_path", type=click.Path(dir_okay=False), help="Test set, alike.")
@click.option("--label", help="CSV only: the label column (default 'label', else the last).")
@click.option("--hidden-size", type=click.IntRange(min=1), help="[default: 64]")
@click.option("--num-layers", type=click.IntRange(min=1), help="[default: 1]")
@click.option("--cell", type=click.Choice(["lstm", "gru", "rnn"]), help="[default: lstm]")
@click.option("--bidirectional/--unidirectional", default=None, help="[default: unidirectional]")
@click.option(
    "--pooling",
    type=click.Choice(["last", "mean", "max"]),
    help="Many-to-one head: last valid state, or mean/max over valid steps. [last]",
)
@click.option(
    "--normalize",
    type=click.Choice(["series", "global", "none"]),
    help="z-normalise each series (UCR convention), or by training-set statistics.",
)
@click.option(
    "--window",
    type=click.IntRange(min=1),
    help="Each network step reads this many consecutive values (long series). [default: 1]",
)
@click.option(
    "--stride",
    type=click.IntRange(min=1),
    help="Steps between the starts of two windows. [default: the window]",
)
@click.option(
    "--lr-schedule",
    type=click.Choice(["none", "cosine"]),
    help="cosine: decay the learning rate to 0 over training. [default: none]",
)
@click.option("--dropout", type=float, help="[default: 0]")
@click.option("--zoneout", type=float, help="[default: 0]")
@click.option("--epochs", type=click.IntRange(min=1), help="[default: 100]")
@click.option("--batch-size", type=click.IntRange(min=1), help="[default: 32]")
@click.option("--lr", type=float, help="Adam learning rate. [default: 0.003]")
@click.option("--weight-decay", type=float, help="[default: 0]")
@click.option(
    "--ensemble",
    type=click.IntRange(min=1),
    help="Train N networks (seeds SEED .. SEED+N-1) and average their probabilities. [1]",
)
@run_options
@handle_errors
def classify_train(train_path: str | None, test_path: str | None, **kw: Any) -> None:
    """Train on --train, report accuracy, macro-F1 and the confusion matrix on --test, and
    save the model and a confusion-matrix plot in the run folder."""
    from rnnkit.apps.classify import RNNClassifier

    kw["train"], kw["test"] = train_path, test_path
    run, config, common = prepare_run("classify", DEFAULTS, kw, paths=("train", "test"))
    quiet = common["quiet"]
    # Everything the user gave is checked before the run folder is touched.
    train = load_dataset(config["train"], config["label"])
    test = load_dataset(config["test"], config["label"])
    channels = {x.shape[1] for x in train.X} | {x.shape[1] for x in test.X}
    if len(channels) != 1:
        raise CLIError(f"train and test series must have the same channels, got {channels}")
    params = {k: config[k] for k in MODEL_KEYS}
    params["normalize"] = None if params["normalize"] == "none" else params["normalize"]
    params["stride"] = params["stride"] or None
    params["lr_schedule"] = None if params["lr_schedule"] == "none" else params["lr_schedule"]
    model = RNNClassifier(**params, quiet=quiet)
    model.check_params()
    with run.writing(config):
        report(f"run folder: {run.final}", quiet=quiet)
        report(
            f"train: {len(train.X)} series, test: {len(test.X)} series, "
            f"{channels.pop()} channel(s), classes {list(train.classes)}",
            quiet=quiet,
        )
        with training(run, "classify"):
            model.fit(train.X, train.y, **fit_options(run, common))
        exit_if_interrupted(run, "classify", model.stopped_, None)
        model.save(run.file(MODEL))
        scores = model.evaluate(test.X, test.y)
        text = _print_evaluation(scores)
        run.write_text(
            "report.md", f"# Test set: {config['test']}\n\n```\n{text}\n```\n", replace=True
        )
        if not common["no_plot"]:
            from rnnkit.apps import plots

            draw_plot(
                run,
                "confusion_matrix.png",
                plots.confusion_matrix,
                scores["confusion_matrix"],
                [str(c) for c in scores["classes"]],
                title=f"{Path(config['test']).name}: accuracy {scores['accuracy']:.3f}",
                quiet=quiet,
            )
    report(f"saved {run.file(MODEL)}", quiet=quiet)


@classify.command("eval")
@run_dir_option("The run folder of a trained classifier.")
@click.option(
    "--test",
    "test_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="A .ts or CSV file to evaluate on.",
)
@click.option("--label", default="label", show_default=True, help="CSV only: the label column.")
@handle_errors
def classify_eval(run_dir: str, test_path: str, label: str) -> None:
    """Accuracy, macro-F1 and the confusion matrix of a trained classifier on a dataset."""
    from rnnkit.apps.classify import RNNClassifier

    run = RunFolder.open(run_dir, "classify")
    model = RNNClassifier.load(run.file(MODEL))
    data = load_dataset(test_path, label)
    _print_evaluation(model.evaluate(data.X, data.y))
