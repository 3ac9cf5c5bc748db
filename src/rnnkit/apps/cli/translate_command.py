"""``rnnkit translate``: sequence-to-sequence translation from ``source<TAB>target`` files —
train (grapheme-to-phoneme by default), evaluate, predict."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
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
from rnnkit.apps.cli.runs import (
    METRICS,
    MODEL,
    CLIError,
    RunFolder,
    draw_plot,
    draw_training_curves,
)

#: The trainable settings and their defaults (the Translator's; 0 stands for None where noted).
DEFAULTS: dict[str, Any] = {
    "train": "",
    "dev": "",
    "dev_fraction": 0.05,
    "validation_fraction": 0.05,
    "source_tokens": "chars",
    "target_tokens": "words",
    "embedding_dim": 64,
    "hidden_size": 256,
    "num_layers": 1,
    "encoder_layers": 0,  # 0: num_layers
    "cell": "lstm",
    "bidirectional": True,
    "attention": "general",
    "attention_size": 0,  # 0: hidden_size
    "input_feeding": True,
    "bridge": "linear",
    "tie_embeddings": False,
    "dropout": 0.2,
    "label_smoothing": 0.1,
    "scheduled_sampling": 0.0,
    "epochs": 20,
    "batch_size": 64,
    "lr": 2e-3,
    "clip_norm": 5.0,  # 0: no clipping
    "lr_schedule": "plateau",  # "constant": None
    "lr_decay": 0.5,
    "lr_patience": 0,
    "patience": 3,  # 0: no early stopping
    "beam": 5,
    "length_penalty": "average",
    "alpha": 0.6,
    "max_length_ratio": 2.0,
    "max_length_offset": 10,
    "seed": 0,
    "plot_examples": 4,
}
MODEL_KEYS = (
    "source_tokens",
    "target_tokens",
    "embedding_dim",
    "hidden_size",
    "num_layers",
    "encoder_layers",
    "cell",
    "bidirectional",
    "attention",
    "attention_size",
    "input_feeding",
    "bridge",
    "tie_embeddings",
    "dropout",
    "label_smoothing",
    "scheduled_sampling",
    "epochs",
    "batch_size",
    "lr",
    "clip_norm",
    "lr_schedule",
    "lr_decay",
    "lr_patience",
    "patience",
    "dev_fraction",
    "validation_fraction",
    "beam",
    "length_penalty",
    "alpha",
    "max_length_ratio",
    "max_length_offset",
    "seed",
)
#: Lines of standard input translated together by ``predict`` (one at a time on a terminal).
STDIN_CHUNK = 256


def _format_scores(scores: dict[str, Any], what: str, beam: int) -> str:
    """The evaluation as text lines (rates in percent)."""
    lines = [
        f"{what}: {scores['n']:,} sources, beam {beam}",
        f"token error rate:     {100 * scores['token_error_rate']:6.2f} %",
        f"sequence error rate:  {100 * scores['sequence_error_rate']:6.2f} %",
    ]
    if "bleu" in scores:
        lines.append(f"BLEU:                 {scores['bleu']:6.2f}")
        lines.append(f"chrF:                 {scores['chrf']:6.2f}")
    return "\n".join(lines)


@cli.group()
def translate() -> None:
    """Sequence-to-sequence translation with attention and beam search, trained on
    source<TAB>target lines (grapheme-to-phoneme conversion by default: characters in,
    space-separated phonemes out). Several lines with the same source are alternative
    references.

    \b
    rnnkit translate train --train cmudict-train.tsv --dev-fraction 0.05
    rnnkit translate eval --run runs/NAME --data test.tsv --json
    rnnkit translate predict --run runs/NAME --nbest 3 HELLO WORLD
    echo HELLO | rnnkit translate predict --run runs/NAME
    """


@translate.command("train")
@click.option(
    "--train",
    "train_path",
    type=click.Path(dir_okay=False),
    help="Training pairs: a UTF-8 file of source<TAB>target lines.",
)
@click.option(
    "--dev",
    "dev_path",
    type=click.Path(dir_okay=False),
    help="Development pairs, alike (scored once, at the end).",
)
@click.option(
    "--dev-fraction",
    type=click.FloatRange(0, 1, max_open=True),
    help="Without --dev: hold out this fraction of the training sources (whole sources, "
    "a fixed SHA-256 choice); 0: none.  [default: 0.05]",
)
@click.option(
    "--validation-fraction",
    type=click.FloatRange(0, 1, max_open=True),
    help="Hold out this fraction of the remaining training sources (another fixed choice) "
    "for the learning-rate schedule and early stopping; 0: the development set serves.  "
    "[default: 0.05]",
)
@click.option("--source-tokens", type=click.Choice(["chars", "words"]), help="[default: chars]")
@click.option("--target-tokens", type=click.Choice(["chars", "words"]), help="[default: words]")
@click.option("--embedding-dim", type=click.IntRange(min=1), help="[default: 64]")
@click.option("--hidden-size", type=click.IntRange(min=1), help="[default: 256]")
@click.option("--num-layers", type=click.IntRange(min=1), help="Decoder layers.  [default: 1]")
@click.option(
    "--encoder-layers",
    type=click.IntRange(min=1),
    help="Encoder layers.  [default: --num-layers]",
)
@click.option("--cell", type=click.Choice(["lstm", "gru", "rnn"]), help="[default: lstm]")
@click.option(
    "--bidirectional/--unidirectional",
    default=None,
    help="The encoder's directions.  [default: bidirectional]",
)
@click.option(
    "--attention",
    type=click.Choice(["general", "dot", "additive"]),
    help="The attention score (Luong general/dot, Bahdanau additive).  [default: general]",
)
@click.option(
    "--attention-size",
    type=click.IntRange(min=1),
    help="additive only: its hidden size.  [default: --hidden-size]",
)
@click.option(
    "--input-feeding/--no-input-feeding",
    default=None,
    help="Feed the last attentional state to the next decoder step.  [default: on]",
)
@click.option(
    "--bridge",
    type=click.Choice(["linear", "zeros"]),
    help="The decoder's initial state from the encoder's final state, or zeros.  [linear]",
)
@click.option(
    "--tie-embeddings/--no-tie-embeddings",
    default=None,
    help="Output layer = target embedding (needs --embedding-dim = --hidden-size).  [off]",
)
@click.option("--dropout", type=float, help="[default: 0.2]")
@click.option("--label-smoothing", type=float, help="[default: 0.1]")
@click.option(
    "--scheduled-sampling",
    type=float,
    help="Probability of feeding the model's own prediction in training.  [default: 0]",
)
@click.option("--epochs", type=click.IntRange(min=1), help="At most.  [default: 20]")
@click.option("--batch-size", type=click.IntRange(min=1), help="Pairs per step.  [default: 64]")
@click.option("--lr", type=float, help="Adam learning rate.  [default: 0.002]")
@click.option(
    "--clip-norm",
    type=click.FloatRange(min=0),
    help="Gradient-norm clipping; 0: none.  [default: 5]",
)
@click.option(
    "--lr-schedule",
    type=click.Choice(["plateau", "cosine", "constant"]),
    help="plateau: times --lr-decay when the validation loss stops improving; cosine: "
    "annealed to 0 over --epochs (for a fixed time budget).  [default: plateau]",
)
@click.option(
    "--lr-decay",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="plateau's factor.  [default: 0.5]",
)
@click.option(
    "--lr-patience",
    type=click.IntRange(min=0),
    help="plateau: epochs without a better validation loss before a cut.  [default: 0]",
)
@click.option(
    "--patience",
    type=click.IntRange(min=0),
    help="Stop after this many epochs without a better validation loss (the best "
    "parameters are kept); 0: train all epochs.  [default: 3]",
)
@click.option(
    "--beam", type=click.IntRange(min=1), help="Beam width of the evaluation.  [default: 5]"
)
@click.option(
    "--length-penalty",
    type=click.Choice(["average", "gnmt", "none"]),
    help="How beam search compares outputs of different lengths.  [default: average]",
)
@click.option("--alpha", type=float, help="gnmt's exponent.  [default: 0.6]")
@click.option(
    "--max-length-ratio",
    type=click.FloatRange(min=0),
    help="Outputs have at most RATIO * source tokens + OFFSET tokens.  [default: 2]",
)
@click.option(
    "--max-length-offset", type=click.IntRange(min=1), help="See --max-length-ratio. [10]"
)
@click.option(
    "--plot-examples",
    type=click.IntRange(min=0),
    help="Development sources shown in attention.png.  [default: 4]",
)
@run_options
@handle_errors
def translate_train(train_path: str | None, dev_path: str | None, **kw: Any) -> None:
    """Train on --train, evaluate the validation and development sets with beam search
    (token and sequence error rates, and BLEU and chrF for word targets), and save the model,
    report.md, training.png and attention.png in the run folder."""
    from rnnkit.apps.translate import Translator
    from rnnkit.apps.translate.estimator import validation_split
    from rnnkit.data.pairs import read_pairs, split_by_source

    if dev_path and kw["dev_fraction"] is not None:
        raise CLIError("give --dev or --dev-fraction, not both")
    kw["train"], kw["dev"] = train_path, dev_path
    run, config, common = prepare_run("translate", DEFAULTS, kw, paths=("train", "dev"))
    quiet = common["quiet"]
    # Everything the user gave is checked before the run folder is touched: settings first.
    params = {k: config[k] for k in MODEL_KEYS}
    for key in ("encoder_layers", "attention_size", "clip_norm", "patience"):
        params[key] = params[key] or None
    if params["lr_schedule"] == "constant":
        params["lr_schedule"] = None
    model = Translator(**params, quiet=quiet)
    model.check_params()
    if not config["train"]:
        raise CLIError("--train is required (or set it in --config)")
    pairs = read_pairs(config["train"])
    if config["dev"]:
        config["dev_fraction"] = 0.0  # the development set is the file
        train, dev = pairs, read_pairs(config["dev"])
        dev_name = config["dev"]
    elif config["dev_fraction"] > 0:
        train, dev = split_by_source(pairs, config["dev_fraction"])
        dev_name = f"{config['dev_fraction']:g} of the training sources"
    else:
        train, dev, dev_name = pairs, None, ""
    validation = None
    if config["validation_fraction"] > 0:
        validation = validation_split(train, config["validation_fraction"])[1]
    if dev is None and validation is None:
        model.set_params(patience=None)  # nothing to stop on: all epochs
    with run.writing(config):
        report(f"run folder: {run.final}", quiet=quiet)
        n_dev = f"{len(dev):,} development pairs ({dev_name})" if dev else "no development set"
        n_val = f"{len(validation):,} of them for validation, " if validation else ""
        report(f"{len(train):,} training pairs ({n_val}{n_dev})", quiet=quiet)
        with training(run, "translate"):
            model.fit(train, dev=dev, log=run.file(METRICS), **fit_options(run, common))
        exit_if_interrupted(run, "translate", model.stopped_, model.n_steps_)
        model.save(run.file(MODEL))
        shown = dev or validation or train
        kind = "development" if dev else "validation" if validation else "training"
        examples = list(dict.fromkeys(s for s, _ in shown))[: config["plot_examples"]]
        texts = []
        if validation:
            texts.append(_format_scores(model.evaluate(validation), "validation set", model.beam))
        if dev:
            texts.append(_format_scores(model.evaluate(dev), "development set", model.beam))
        if texts:
            text = "\n\n".join(texts)
            click.echo(text)
            what = f"development set: {dev_name}" if dev else "validation set"
            run.write_text("report.md", f"# Scores on the {what}\n\n```\n{text}\n```\n",
                           replace=True)  # fmt: skip
        if not common["no_plot"]:
            draw_training_curves(run, quiet=quiet)
            if examples:
                from rnnkit.apps import plots

                found = model.attention_weights(examples, tokens=True)
                draw_plot(
                    run,
                    "attention.png",
                    plots.attention,
                    [w for w, _, _ in found],
                    [s for _, s, _ in found],
                    [t for _, _, t in found],
                    titles=examples,
                    title=f"Attention ({kind} examples)",
                    quiet=quiet,
                )
    report(f"saved {run.file(MODEL)}", quiet=quiet)


@translate.command("eval")
@run_dir_option("The run folder of a trained translator.")
@click.option(
    "--data",
    required=True,
    type=click.Path(dir_okay=False),
    help="A UTF-8 file of source<TAB>target lines (several lines per source: alternatives).",
)
@click.option(
    "--beam", type=click.IntRange(min=1), help="Beam width (1: greedy).  [default: the run's]"
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print one JSON object: {"token_error_rate": .., "sequence_error_rate": .., "n": ..} '
    "(rates as fractions; with word targets also bleu and chrf, 0-100).",
)
@handle_errors
def translate_eval(run_dir: str, data: str, beam: int | None, as_json: bool) -> None:
    """Token error rate (edit distance to the closest reference over the reference lengths:
    the phoneme error rate of G2P) and sequence error rate (outputs matching none of their
    references: the word error rate of G2P), each distinct source translated once; BLEU and
    chrF too when the targets are words."""
    from rnnkit.apps.translate import Translator
    from rnnkit.data.pairs import read_pairs

    run = RunFolder.open(run_dir, "translate")
    model = Translator.load(run.file(MODEL))
    pairs = read_pairs(data)
    scores = model.evaluate(pairs, beam=beam)
    if as_json:
        click.echo(json.dumps(scores))
    else:
        click.echo(_format_scores(scores, data, model.beam if beam is None else beam))


def _inputs(texts: tuple[str, ...]) -> Iterator[list[str]]:
    """The sources to translate, in chunks: the arguments, else the lines of standard input
    (stripped; blank lines skipped; one line at a time on a terminal)."""
    if texts:
        yield [t.strip() for t in texts]
        return
    stream = click.get_text_stream("stdin")
    size = 1 if stream.isatty() else STDIN_CHUNK
    chunk: list[str] = []
    for line in stream:
        if line.strip():
            chunk.append(line.strip())
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@translate.command("predict")
@run_dir_option("The run folder of a trained translator.")
@click.option(
    "--beam",
    type=click.IntRange(min=1),
    help="Beam width (1: greedy).  [default: the run's, or --nbest if larger]",
)
@click.option(
    "--nbest",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Outputs per source, best first.",
)
@click.argument("text", nargs=-1)
@handle_errors
def translate_predict(run_dir: str, beam: int | None, nbest: int, text: tuple[str, ...]) -> None:
    """Translate each TEXT, or each line of standard input when no TEXT is given (blank lines
    are skipped; leading and trailing whitespace is removed).

    \b
    Output, one source after another, in input order:
      --nbest 1 (default): one line per source, its translation;
      --nbest N > 1: N lines per source (fewer only if the model rules the rest out),
        rank<TAB>score<TAB>translation, rank 1..N, best first; the score is the
        log-probability under the run's length penalty (per token for "average").
    """
    from rnnkit.apps.translate import Translator

    run = RunFolder.open(run_dir, "translate")
    model = Translator.load(run.file(MODEL))
    k = beam if beam is not None else max(model.beam, nbest)
    for chunk in _inputs(text):
        outputs = model.predict(chunk, beam=k, nbest=nbest)
        if nbest == 1:
            lines = outputs
        else:
            lines = [
                f"{rank}\t{score:.4f}\t{target}"
                for hyps in outputs
                for rank, (target, score) in enumerate(hyps, start=1)
            ]
        if lines:
            click.echo("\n".join(lines))
        sys.stdout.flush()
