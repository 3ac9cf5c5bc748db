"""``rnnkit forecast``: train a forecaster on a CSV column, predict ahead, backtest — always with
the naive, seasonal-naive and drift baselines next to the model's figures."""

from __future__ import annotations

from typing import Any

import click
import numpy as np

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
from rnnkit.apps.cli.runs import MODEL, CLIError, RunFolder, draw_plot

DEFAULTS: dict[str, Any] = {
    "csv": "",
    "target": "",
    "date": "",
    "interpolate": False,
    "horizon": 1,
    "test_size": 0,  # 0: the horizon
    "window": 24,
    "strategy": "direct",
    "season": 1,
    "log": False,
    "difference": 0,
    "scaling": "standard",
    "hidden_size": 64,
    "num_layers": 1,
    "cell": "lstm",
    "epochs": 200,
    "batch_size": 32,
    "lr": 1e-2,
    "seed": 0,
}
MODEL_KEYS = (
    "window",
    "horizon",
    "strategy",
    "season",
    "log",
    "difference",
    "scaling",
    "hidden_size",
    "num_layers",
    "cell",
    "epochs",
    "batch_size",
    "lr",
    "seed",
)
BASELINES = ("naive", "seasonal_naive", "drift")


def _series_options(func):
    options = [
        click.option(
            "--csv", "csv_path", type=click.Path(dir_okay=False), help="CSV file with a header row."
        ),
        click.option("--target", help="The column to forecast."),
        click.option("--date", help="The column of dates/times (labels only)."),
        click.option(
            "--interpolate",
            is_flag=True,
            default=None,
            help="Fill missing values linearly (default: missing values are an error).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _load(csv_path: str, target: str, date: str | None, interpolate: bool):
    from rnnkit.data import load_csv_series

    if not csv_path or not target:
        raise CLIError("--csv and --target are required (or set them in --config)")
    return load_csv_series(csv_path, target, date=date or None, interpolate=bool(interpolate))


@cli.group()
def forecast() -> None:
    """Forecast a time series from a CSV column.

    \b
    rnnkit forecast train --csv airline.csv --target Passengers --date Month \\
        --horizon 12 --season 12 --window 24 --log
    rnnkit forecast predict --run runs/NAME --horizon 12
    rnnkit forecast backtest --run runs/NAME --initial 100
    """


@forecast.command("train")
@_series_options
@click.option("--horizon", type=click.IntRange(min=1), help="Steps forecast at once. [default: 1]")
@click.option(
    "--test-size",
    type=click.IntRange(min=0),
    help="Last points held out for the test (default: the horizon).",
)
@click.option("--window", type=click.IntRange(min=1), help="Past steps read per forecast. [24]")
@click.option(
    "--strategy",
    type=click.Choice(["direct", "recursive"]),
    help="direct: all horizon steps at once; recursive: one step, fed back. [direct]",
)
@click.option(
    "--season",
    type=click.IntRange(min=1),
    help="Season length for the seasonal-naive baseline and MASE. [default: 1]",
)
@click.option(
    "--log", is_flag=True, default=None, help="Model the logarithm (multiplicative series)."
)
@click.option(
    "--difference",
    type=click.IntRange(min=0),
    help="Difference the series at this lag first (0: no). [default: 0]",
)
@click.option(
    "--scaling",
    type=click.Choice(["standard", "minmax", "none"]),
    help="Scaling fitted on the training part only. [standard]",
)
@click.option("--hidden-size", type=click.IntRange(min=1), help="[default: 64]")
@click.option("--num-layers", type=click.IntRange(min=1), help="[default: 1]")
@click.option("--cell", type=click.Choice(["lstm", "gru", "rnn"]), help="[default: lstm]")
@click.option("--epochs", type=click.IntRange(min=1), help="[default: 200]")
@click.option("--batch-size", type=click.IntRange(min=1), help="[default: 32]")
@click.option("--lr", type=float, help="Adam learning rate. [default: 0.01]")
@run_options
@handle_errors
def forecast_train(csv_path: str | None, **kw: Any) -> None:
    """Fit on all but the last --test-size points, forecast them, and compare with the
    baselines; save the model, the forecast (CSV) and a plot in the run folder."""
    from rnnkit.apps.forecast import RNNForecaster

    kw["csv"] = csv_path
    run, config, common = prepare_run("forecast", DEFAULTS, kw, paths=("csv",))
    quiet = common["quiet"]
    # Everything the user gave is checked before the run folder is touched.
    series = _load(config["csv"], config["target"], config["date"], config["interpolate"])
    test_size = config["test_size"] or config["horizon"]
    params = {k: config[k] for k in MODEL_KEYS}
    params["scaling"] = None if params["scaling"] == "none" else params["scaling"]
    params["difference"] = params["difference"] or False
    est = RNNForecaster(**params, quiet=quiet)
    est.check_params()
    with run.writing(config):
        report(f"run folder: {run.final}", quiet=quiet)
        report(
            f"{series.name}: {len(series.values)} points; the last {test_size} held out",
            quiet=quiet,
        )
        with training(run, "forecast"):
            result = est.evaluate_holdout(series.values, test_size, **fit_options(run, common))
        exit_if_interrupted(run, "forecast", result.estimator.stopped_, None)
        result.estimator.save(run.file(MODEL))
        table = result.to_markdown()
        run.write_text(
            "report.md", f"# Hold-out test: last {test_size} points\n\n{table}\n", replace=True
        )
        origin = int(result.origins[0])
        labels = series.dates if series.dates is not None else np.arange(len(series.values))
        lines = ["date,actual,model," + ",".join(BASELINES)]
        for i in range(test_size):
            row = [str(labels[origin + i]), repr(float(result.actual[0, i]))]
            row += [repr(float(result.forecasts[m][0, i])) for m in ("model", *BASELINES)]
            lines.append(",".join(row))
        run.write_text("forecast.csv", "\n".join(lines) + "\n", replace=True)
        if not common["no_plot"]:
            from rnnkit.apps import plots

            draw_plot(
                run,
                "forecast.png",
                plots.forecast,
                result.actual[0],
                result.forecasts["model"][0],
                history=series.values[:origin],
                baselines={m: result.forecasts[m][0] for m in BASELINES},
                index=[str(d) for d in labels],
                title=f"{series.name}: forecast of the last {test_size} points",
                quiet=quiet,
            )
    click.echo(f"hold-out test, last {test_size} points of {series.name}:")
    click.echo(table)
    report(f"saved {run.file(MODEL)}", quiet=quiet)


@forecast.command("predict")
@run_dir_option("The run folder of a trained forecaster.")
@_series_options
@click.option("--horizon", type=click.IntRange(min=1), help="Steps ahead (default: the model's).")
@handle_errors
def forecast_predict(
    run_dir: str,
    csv_path: str | None,
    target: str | None,
    date: str | None,
    interpolate: bool | None,
    horizon: int | None,
) -> None:
    """Forecast the steps after the end of a series (default: the run's own CSV, in full)."""
    from rnnkit.apps.forecast import RNNForecaster

    run = RunFolder.open(run_dir, "forecast")
    series = _run_series(run, csv_path, target, date, interpolate)
    model = RNNForecaster.load(run.file(MODEL))
    values = model.predict(series.values, horizon=horizon)
    click.echo("step,forecast")
    for i, v in enumerate(values, start=1):
        click.echo(f"{i},{float(v)!r}")


def _run_series(
    run: RunFolder,
    csv_path: str | None,
    target: str | None,
    date: str | None,
    interpolate: bool | None,
):
    """The series the options name, each option the run's stored setting when not given."""
    stored = run.config()
    return _load(
        csv_path or stored["csv"],
        target or stored["target"],
        date if date is not None else stored.get("date", ""),
        interpolate if interpolate is not None else stored.get("interpolate", False),
    )


@forecast.command("backtest")
@run_dir_option("A forecast run folder: its settings (and by default its CSV) are used.")
@_series_options
@click.option(
    "--initial",
    required=True,
    type=click.IntRange(min=2),
    help="Points the model is fitted on before the first forecast origin.",
)
@count_option("--step", 1, "Points between forecast origins.")
@click.option("--folds", type=click.IntRange(min=1), help="At most this many origins.")
@click.option("--refit", is_flag=True, help="Refit at every origin (slow) instead of once.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@handle_errors
def forecast_backtest(
    run_dir: str,
    csv_path: str | None,
    target: str | None,
    date: str | None,
    interpolate: bool | None,
    initial: int,
    step: int,
    folds: int | None,
    refit: bool,
    quiet: bool,
) -> None:
    """Rolling-origin backtest with the run's settings, next to the baselines."""
    from rnnkit.apps.forecast import RNNForecaster

    run = RunFolder.open(run_dir, "forecast")
    series = _run_series(run, csv_path, target, date, interpolate)
    params = RNNForecaster.load(run.file(MODEL)).get_params()
    params["quiet"] = quiet
    result = RNNForecaster(**params).backtest(
        series.values, initial, step=step, folds=folds, refit=refit
    )
    run.write_text("backtest.md", f"# Rolling-origin backtest\n\n{result}\n", replace=True)
    click.echo(str(result))
