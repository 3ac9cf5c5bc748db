"""``rnnkit diagnose``: gradient flow through time, and the activations of a trained model."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np

from rnnkit.apps.cli.app import cli, handle_errors
from rnnkit.apps.cli.options import count_option, run_dir_option
from rnnkit.apps.cli.runs import MODEL, RunFolder

#: The cells of ``gradient-flow``, and how the table and the plot name them.
CELL_LABELS = {"rnn": "tanh RNN", "lstm": "LSTM", "gru": "GRU"}
#: The distances of the printed table (those up to --length, and --length itself).
TABLE_DISTANCES = (1, 10, 25, 50, 100)


def _parse_cells(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    cells = [c.strip().lower() for c in value.split(",") if c.strip()]
    unknown = [c for c in cells if c not in CELL_LABELS]
    if not cells or unknown:
        raise click.BadParameter(
            f"expected a comma-separated list of {', '.join(CELL_LABELS)}, got {value!r}"
        )
    return list(dict.fromkeys(cells))  # each once, in the order given


def _parse_forget_bias(ctx: click.Context, param: click.Parameter, value: str) -> float | None:
    if value.strip().lower() == "pytorch":
        return None
    try:
        return float(value)
    except ValueError:
        raise click.BadParameter(f"expected a number or 'pytorch', got {value!r}") from None


def _out_option(default: str, help: str) -> Callable:
    """``--out FILE``, where a command writes its plot."""
    return click.option(
        "--out", default=default, show_default=True, type=click.Path(dir_okay=False), help=help
    )


def _plot_hint() -> None:
    from rnnkit.apps import plots

    click.echo(f"plot skipped: {plots.INSTALL_HINT}")


@cli.group()
def diagnose() -> None:
    """Look inside recurrent networks: how far back gradients reach, what the units do.

    \b
    rnnkit diagnose gradient-flow                    tanh RNN vs LSTM vs GRU, fresh layers
    rnnkit diagnose activations --run runs/NAME --text "To be, or not to be"
    """


@diagnose.command("gradient-flow")
@count_option("--length", 100, "Time steps T between the first input and the loss.")
@count_option("--hidden-size", 64, "Hidden units H.")
@count_option("--input-size", 8, "Input features D (random normal inputs).")
@count_option("--batch-size", 16, "Random sequences averaged over.")
@click.option(
    "--cells",
    default="rnn,lstm,gru",
    show_default=True,
    callback=_parse_cells,
    help="Comma-separated cells to compare: rnn (tanh), lstm, gru.",
)
@click.option(
    "--forget-bias",
    default="1.0",
    show_default=True,
    callback=_parse_forget_bias,
    help="The LSTM's forget-gate bias (1.0: the classic choice, Keras's default), or "
    "'pytorch' for PyTorch's default initialisation, whose forget gates start near 0.5.",
)
@count_option("--seeds", 3, "Independent initialisations; the curves are averaged over them.")
@_out_option("gradient_flow.png", "Where to write the plot (PNG).")
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False),
    help="Also write the curves (mean over seeds) as CSV: distance, one column per cell.",
)
@handle_errors
def gradient_flow(
    length: int,
    hidden_size: int,
    input_size: int,
    batch_size: int,
    cells: list[str],
    forget_bias: float | None,
    seeds: int,
    out: str,
    csv_path: str | None,
) -> None:
    """How the gradient of a loss on the last hidden state fades with distance in time.

    For freshly initialised layers (PyTorch's default initialisation, random normal inputs),
    the norm of dL/dh at k steps before the loss L = r . h_T (a random unit vector r, so
    ||dL/dh_T|| = 1). The tanh RNN's gradient shrinks geometrically. The LSTM's cell state
    carries it much further when its forget gates start near 1 (--forget-bias 1, the default
    here); with PyTorch's initialisation (--forget-bias pytorch) they start near 0.5 and its
    gradient fades almost as fast as the RNN's.
    """
    from rnnkit.apps import diagnose as diag
    from rnnkit.apps import plots

    curves: dict[str, np.ndarray] = {}  # label -> (S, T + 1)
    for cell in cells:
        label = CELL_LABELS[cell]
        options: dict[str, Any] = {}
        if cell == "lstm":
            options["forget_bias"] = forget_bias
            label += " (PyTorch init)" if forget_bias is None else f" (forget bias {forget_bias:g})"
        curves[label] = np.stack(
            [
                diag.gradient_flow(
                    cell, length, hidden_size, input_size, batch_size, seed=seed, **options
                )
                for seed in range(seeds)
            ]
        )
    means = {label: c.mean(axis=0) for label, c in curves.items()}  # (T + 1,)
    distances = [d for d in TABLE_DISTANCES if d < length] + [length]
    click.echo(
        f"||dL/dh|| at distance k from a loss on the last hidden state (||dL/dh_T|| = 1), "
        f"H={hidden_size}, mean over {batch_size} sequences and {seeds} seed(s)"
    )
    widths = [max(len(label), 9) for label in means]
    click.echo("  ".join([f"{'k':>8}", *(f"{lab:>{w}}" for lab, w in zip(means, widths))]))
    for d in distances:
        row = [f"{d:>8}", *(f"{m[d]:>{w}.2e}" for m, w in zip(means.values(), widths))]
        click.echo("  ".join(row))
    if csv_path:
        with open(csv_path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["distance", *means])
            for d in range(length + 1):
                writer.writerow([d, *(f"{m[d]:.6e}" for m in means.values())])
        click.echo(f"csv: {csv_path}")
    if not plots.available():
        _plot_hint()
        return
    title = f"Gradient flow through time (H = {hidden_size}, fresh layers)"
    click.echo(f"plot: {plots.gradient_flow(curves, out, title=title)}")


@diagnose.command("activations")
@run_dir_option("The run folder of a trained character language model.")
@click.option(
    "--text",
    required=True,
    help="The text to run the model over (the characters themselves, not a file name).",
)
@click.option(
    "--layer",
    "num_layer",
    type=int,
    help="Which recurrent layer, 0 = the bottom (as in weight_ih_l0).  [default: the top]",
)
@count_option(
    "--units", 32, "How many units to draw (the first ones); the statistics cover them all."
)
@_out_option("activations.png", "Where to write the heatmaps (PNG).")
@handle_errors
def activations(run_dir: str, text: str, num_layer: int | None, units: int, out: str) -> None:
    """Heatmaps of the hidden state and the gates of a trained language model over a text.

    One row per unit, one column per character: the hidden state h, for the LSTM the cell
    state c and the gates i, f, g, o, for the GRU the gates r, z, n.
    """
    from rnnkit.apps import diagnose as diag
    from rnnkit.apps import plots
    from rnnkit.apps.lm import CharLM

    if not text:
        raise ValueError("--text is empty: give the characters to run the model over")
    run = RunFolder.open(run_dir, "lm")
    est = CharLM.load(run.file(MODEL))
    model, vocab = est.model_, est.vocabulary_
    rnn = model.rnn
    layer = rnn.num_layers - 1 if num_layer is None else num_layer
    if not 0 <= layer < rnn.num_layers:
        raise ValueError(f"--layer must be in [0, {rnn.num_layers - 1}], got {num_layer}")
    unknown = vocab.count_unknown(text)
    if unknown:
        click.echo(f"note: {unknown} character(s) of the text are not in the model's vocabulary")
    ids = vocab.encode(text)[:, None]  # (T, 1)
    e, _ = model.embedding.forward(ids)  # (T, 1, E)
    acts = diag.activations(rnn, e, num_layer=layer)  # name -> (T, H)
    click.echo(
        f"{type(rnn).__name__} layer {layer} of 0..{rnn.num_layers - 1}, "
        f"{rnn.hidden_size} units, {len(text)} characters"
    )
    click.echo(f"{'':>3}  {'mean':>7}  {'std':>7}  {'min':>7}  {'max':>7}")
    for name, a in acts.items():
        click.echo(f"{name:>3}  {a.mean():7.3f}  {a.std():7.3f}  {a.min():7.3f}  {a.max():7.3f}")
    if not plots.available():
        _plot_hint()
        return
    shown = {name: a[:, :units] for name, a in acts.items()}
    which = f"units 0-{min(units, rnn.hidden_size) - 1} of {rnn.hidden_size}"
    title = f"{type(rnn).__name__} activations, layer {layer}, {which} (run {Path(run.path).name})"
    path = plots.activations(shown, out, title=title, xlabels=list(text))
    click.echo(f"plot: {path}")
