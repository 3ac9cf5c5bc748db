"""``rnnkit lm``: character language models — train, sample, evaluate."""

from __future__ import annotations

import math
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
from rnnkit.apps.cli.options import count_option, run_dir_option, run_options
from rnnkit.apps.cli.runs import METRICS, MODEL, RunFolder, draw_training_curves

#: The trainable settings and their defaults (the CharLM's, with the training length chosen so
#: that the default run takes a few minutes on 2 cores).
DEFAULTS: dict[str, Any] = {
    "text": [],
    "hidden_size": 256,
    "num_layers": 2,
    "embedding_dim": 64,
    "cell": "lstm",
    "dropout": 0.1,
    "bptt": 100,
    "batch_size": 32,
    "lr": 2e-3,
    "epochs": 5,
    "steps": 0,  # 0: train for `epochs`
    "val_fraction": 0.05,
    "clip_norm": 1.0,
    "seed": 0,
    "sample_length": 400,
    "temperature": 0.8,
    "prime": "The ",
}
MODEL_KEYS = (
    "hidden_size",
    "num_layers",
    "embedding_dim",
    "cell",
    "dropout",
    "bptt",
    "batch_size",
    "lr",
    "epochs",
    "steps",
    "val_fraction",
    "clip_norm",
    "seed",
)


@cli.group()
def lm() -> None:
    """Character language models: train one, sample text from it, evaluate it on a text.

    \b
    rnnkit lm train                      train on the built-in corpus (CPython's docs)
    rnnkit lm train --text play.txt      train on your own UTF-8 text
    rnnkit lm sample --run runs/NAME --prime "To be" --length 300
    rnnkit lm eval --run runs/NAME --text other.txt
    """


@lm.command("train")
@click.option(
    "--text",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="UTF-8 text file(s) to train on (default: text that ships with Python).",
)
@click.option("--hidden-size", type=int, help="Hidden units per layer.  [default: 256]")
@click.option("--num-layers", type=int, help="Stacked recurrent layers.  [default: 2]")
@click.option("--embedding-dim", type=int, help="Character embedding size.  [default: 64]")
@click.option("--cell", type=click.Choice(["lstm", "gru", "rnn"]), help="[default: lstm]")
@click.option("--dropout", type=float, help="Dropout probability.  [default: 0.1]")
@click.option("--bptt", type=int, help="Truncated-BPTT chunk length.  [default: 100]")
@click.option("--batch-size", type=int, help="Parallel text streams.  [default: 32]")
@click.option("--lr", type=float, help="Adam learning rate.  [default: 0.002]")
@click.option("--epochs", type=int, help="Passes over the text.  [default: 5]")
@click.option("--steps", type=int, help="Optimiser steps in total, instead of --epochs.")
@click.option("--val-fraction", type=float, help="Held-out end of the text.  [default: 0.05]")
@click.option("--sample-length", type=int, help="Characters to sample at the end.  [default: 400]")
@click.option("--temperature", type=float, help="Sampling temperature.  [default: 0.8]")
@click.option("--prime", help="Text to start the samples with.  [default: 'The ']")
@run_options
@handle_errors
def lm_train(**kw: Any) -> None:
    """Train a character language model, save it in its run folder and print samples."""
    from rnnkit.apps.lm import CharLM, check_sampling, perplexity
    from rnnkit.data.text import default_corpus, load_text

    kw["text"] = list(kw["text"]) or None
    run, config, common = prepare_run("lm", DEFAULTS, kw, paths=("text",))
    quiet = common["quiet"]
    # Everything the user gave is checked before the run folder is touched.
    text = load_text(config["text"]) if config["text"] else default_corpus()
    source = ", ".join(config["text"]) if config["text"] else "the built-in corpus"
    params = {k: config[k] for k in MODEL_KEYS}
    params["steps"] = params["steps"] or None
    model = CharLM(**params, quiet=quiet)
    model.check_params()
    check_sampling(config["prime"], config["sample_length"], config["temperature"])
    with run.writing(config):
        report(f"run folder: {run.final}", quiet=quiet)
        report(f"training on {source}: {len(text):,} characters", quiet=quiet)
        with training(run, "lm"):
            model.fit(text, log=run.file(METRICS), **fit_options(run, common))
        exit_if_interrupted(run, "lm", model.stopped_, model.n_steps_)
        model.save(run.file(MODEL))
        if model.val_loss_ is not None:
            nats = model.val_loss_
            report(
                f"validation (last {config['val_fraction']:.0%} of the text): {nats:.3f} "
                f"nats/char, {nats / math.log(2):.3f} bits/char, perplexity "
                f"{perplexity(nats):.2f}",
                quiet=quiet,
            )
        sample = config["prime"] + model.sample(
            config["prime"],
            length=config["sample_length"],
            temperature=config["temperature"],
            seed=config["seed"],
        )
        run.write_text("samples.txt", sample + "\n", replace=True)
        if not common["no_plot"]:
            draw_training_curves(run, quiet=quiet)
    click.echo(f"--- sample (prime {config['prime']!r}, temperature {config['temperature']}) ---")
    click.echo(sample)
    report(f"--- saved {run.file(MODEL)} ---", quiet=quiet)


@lm.command("sample")
@run_dir_option("The run folder of a trained language model.")
@click.option("--prime", default="", show_default=True, help="Text to start from.")
@count_option("--length", 300, "Characters to generate.", min=0)
@click.option(
    "--temperature",
    default=1.0,
    show_default=True,
    type=float,
    help="Below 1: safer, more repetitive; above 1: more surprising.",
)
@click.option("--top-k", type=click.IntRange(min=1), help="Sample among the k likeliest only.")
@click.option("--seed", type=int, help="Seed for reproducible samples.")
@handle_errors
def lm_sample(
    run_dir: str, prime: str, length: int, temperature: float, top_k: int | None, seed: int | None
) -> None:
    """Generate text from a trained model."""
    from rnnkit.apps.lm import CharLM

    run = RunFolder.open(run_dir, "lm")
    model = CharLM.load(run.file(MODEL))
    click.echo(model.sample(prime, length=length, temperature=temperature, top_k=top_k, seed=seed))


@lm.command("eval")
@run_dir_option("The run folder of a trained language model.")
@click.option(
    "--text",
    required=True,
    multiple=True,
    type=click.Path(dir_okay=False),
    help="UTF-8 text file(s) to evaluate on.",
)
@handle_errors
def lm_eval(run_dir: str, text: tuple[str, ...]) -> None:
    """Loss of a trained model on a text: nats/char, bits/char and perplexity."""
    from rnnkit.apps.lm import CharLM
    from rnnkit.data.text import load_text

    run = RunFolder.open(run_dir, "lm")
    model = CharLM.load(run.file(MODEL))
    scores = model.evaluate(load_text(list(text)))
    click.echo(
        f"characters:    {scores['chars']:,} ({scores['unknown_chars']:,} unseen in training)"
    )
    click.echo(f"nats/char:     {scores['nats_per_char']:.4f}")
    click.echo(f"bits/char:     {scores['bits_per_char']:.4f}")
    click.echo(f"perplexity:    {scores['perplexity']:.3f}")  # inf for a diverged model
