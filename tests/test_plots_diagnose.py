"""Tests of rnnkit.apps.diagnose (gradient flow, activations), rnnkit.apps.plots and
`rnnkit diagnose`."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import rnnkit
import rnnkit.apps.cli.diagnose_command
from conftest import make_layer
from rnnkit.apps import diagnose, plots
from rnnkit.apps.cli.app import cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _top_state_gradient(layer, x, r, t):
    """dL/dh_t (the state after t steps) the direct way: run the first t steps, then one
    whole-sequence forward and backward over the rest from that state."""
    state = None
    if t > 0:
        _, state, _ = layer.forward(x[:t])
    y, _, cache = layer.forward(x[t:], state)
    n = len(layer.state_names)
    shape = (layer.num_layers, x.shape[1], layer.hidden_size)
    dstate = [np.zeros(shape) for _ in range(n)]
    dstate[0][-1] = r
    _, d0, _ = layer.backward(np.zeros_like(y), cache, dstate[0] if n == 1 else tuple(dstate))
    return (d0 if n == 1 else d0[0])[-1]  # (B, H)


# -- gradient flow ----------------------------------------------------------------------------


def test_tanh_rnn_gradient_vanishes_while_lstm_with_forget_bias_survives():
    rnn = diagnose.gradient_flow("rnn", length=100, seed=0)
    lstm = diagnose.gradient_flow("lstm", length=100, forget_bias=1.0, seed=0)
    assert rnn.shape == lstm.shape == (101,)
    assert rnn[0] == pytest.approx(1.0) and lstm[0] == pytest.approx(1.0)
    # measured: tanh RNN ~3e-14 at distance 50 and ~2e-27 at 100; LSTM ~2e-5 and ~9e-9
    assert rnn[50] < 1e-10 and rnn[100] < 1e-20
    assert lstm[50] > 1e-7 and lstm[100] > 1e-11
    assert lstm[50] / rnn[50] > 1e4
    # the decay is steady: no distance where the RNN's gradient recovers by much
    assert np.all(rnn[1:] < 1.5 * rnn[:-1])


def test_lstm_under_pytorch_default_init_vanishes_too():
    """With PyTorch's initialisation the forget gates sit near sigmoid(0) = 0.5, and the LSTM's
    gradient falls almost as fast as the RNN's: the forget-gate bias is what makes it last."""
    lstm = rnnkit.LSTM(8, 64, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((50, 4, 8))
    f = diagnose.activations(lstm, x)["f"]
    assert abs(f.mean() - 0.5) < 0.05
    default = diagnose.gradient_flow("lstm", length=100, seed=0)
    biased = diagnose.gradient_flow("lstm", length=100, forget_bias=1.0, seed=0)
    assert default[50] < 1e-8
    assert biased[50] > 100 * default[50]


@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm", "gru_after", "gru_before"])
def test_step_by_step_gradients_equal_whole_sequence_backward(kind, rng):
    T, B, D, H = 12, 3, 4, 5
    layer = make_layer(kind, D, H, num_layers=2, seed=3)
    x = rng.standard_normal((T, B, D))
    r = rng.standard_normal((B, H))
    g = diagnose.hidden_gradients(layer, x, r)  # (T + 1, B, H), by distance
    assert g.shape == (T + 1, B, H)
    np.testing.assert_array_equal(g[0], r)
    for t in (0, 1, 5, T - 1):  # t = 0: the layer's own dstate0 of the whole sequence
        expected = _top_state_gradient(layer, x, r, t)
        np.testing.assert_allclose(g[T - t], expected, rtol=1e-10, atol=1e-14)


def test_step_by_step_gradients_match_finite_differences(rng):
    T, B, D, H, t = 15, 2, 3, 4, 6
    layer = make_layer("lstm", D, H, seed=1)
    x = rng.standard_normal((T, B, D))
    r = rng.standard_normal(H)
    g = diagnose.hidden_gradients(layer, x, r)
    _, (h_t, c_t), _ = layer.forward(x[:t])  # the state after t steps
    v = rng.standard_normal(h_t.shape)

    def loss(h):
        _, (h_T, _), _ = layer.forward(x[t:], (h, c_t))
        return float((h_T[-1] * r).sum())

    eps = 1e-6
    numeric = (loss(h_t + eps * v) - loss(h_t - eps * v)) / (2 * eps)
    analytic = float((g[T - t] * v[-1]).sum())
    assert abs(analytic - numeric) / max(abs(analytic) + abs(numeric), 1e-300) < 1e-7


def test_gradient_flow_of_a_given_layer_leaves_it_unchanged():
    lstm = rnnkit.LSTM(5, 6, num_layers=2, dropout=0.5, batch_first=True, seed=0)
    before = {k: v.copy() for k, v in lstm.state_dict().items()}
    rng_before = lstm.rng.bit_generator.state
    curve = diagnose.gradient_flow(layer=lstm, length=20, batch_size=4, seed=1)
    assert curve.shape == (21,) and curve[0] == pytest.approx(1.0, rel=1e-6)
    assert np.all(np.isfinite(curve)) and np.all(curve[1:] > 0)
    assert lstm.training  # evaluation mode only while diagnosing
    assert lstm.rng.bit_generator.state == rng_before  # no dropout masks were drawn
    for name, value in lstm.state_dict().items():
        np.testing.assert_array_equal(value, before[name])
    # the same seed, the same inputs: the curve is reproducible
    np.testing.assert_array_equal(
        curve, diagnose.gradient_flow(layer=lstm, length=20, batch_size=4, seed=1)
    )


def test_gradient_flow_rejects_bad_arguments():
    with pytest.raises(ValueError, match="cell must be one of"):
        diagnose.gradient_flow("transformer")
    with pytest.raises(ValueError, match="forget_bias is for the LSTM only"):
        diagnose.gradient_flow("gru", length=3, forget_bias=1.0)
    with pytest.raises(ValueError, match="length must be a positive int"):
        diagnose.gradient_flow("rnn", length=0)
    with pytest.raises(ValueError, match="layer is used as it is"):
        diagnose.gradient_flow(layer=rnnkit.RNN(2, 3), length=3, nonlinearity="relu")
    with pytest.raises(ValueError, match="unidirectional"):
        diagnose.gradient_flow(layer=rnnkit.GRU(2, 3, bidirectional=True), length=3)
    with pytest.raises(TypeError, match="layer must be an rnnkit recurrent layer"):
        diagnose.hidden_gradients(object(), np.zeros((3, 1, 2)), np.zeros(3))
    with pytest.raises(ValueError, match=r"r must have shape \(3,\) or \(1, 3\)"):
        diagnose.hidden_gradients(rnnkit.RNN(2, 3), np.zeros((3, 1, 2)), np.zeros(4))
    with pytest.raises(ValueError, match=r"x must have shape \(T, B, 2\)"):
        diagnose.hidden_gradients(rnnkit.RNN(2, 3), np.zeros((3, 1, 5)), np.zeros(3))


# -- activations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "names"),
    [
        ("rnn_tanh", ["h"]),
        ("lstm", ["h", "c", "i", "f", "g", "o"]),
        ("gru_after", ["h", "r", "z", "n"]),
        ("gru_before", ["h", "r", "z", "n"]),
    ],
)
def test_activations_shapes_ranges_and_states(kind, names, rng):
    T, B, D, H = 9, 3, 4, 5
    layer = make_layer(kind, D, H, num_layers=2, seed=2)
    x = rng.standard_normal((T, B, D)) * 2.0
    acts = diagnose.activations(layer, x)
    assert list(acts) == names
    for name, a in acts.items():
        assert a.shape == (T, H), name
    for gate in set(names) & {"i", "f", "o", "r", "z"}:  # sigmoids
        assert np.all((acts[gate] > 0) & (acts[gate] < 1)), gate
    for gate in set(names) & {"g", "n"}:  # tanh
        assert np.all(np.abs(acts[gate]) < 1), gate
    y, _, _ = layer.forward(x)  # the top layer's output is its hidden state
    np.testing.assert_array_equal(acts["h"], y[:, 0])
    if kind == "lstm":  # h = o * tanh(c), c = f * c_prev + i * g: the gates are in i, f, g, o order
        np.testing.assert_allclose(acts["h"], acts["o"] * np.tanh(acts["c"]), rtol=1e-12)
        c_prev = np.vstack([np.zeros((1, H)), acts["c"][:-1]])
        np.testing.assert_allclose(
            acts["c"], acts["f"] * c_prev + acts["i"] * acts["g"], rtol=1e-12
        )
    if kind.startswith("gru"):  # h = (1 - z) * n + z * h_prev: the gates are in r, z, n order
        h_prev = np.vstack([np.zeros((1, H)), acts["h"][:-1]])
        expected = (1 - acts["z"]) * acts["n"] + acts["z"] * h_prev
        np.testing.assert_allclose(acts["h"], expected, rtol=1e-12)


def test_activations_of_a_lower_layer_one_sequence_and_batch_first(rng):
    layer = make_layer("gru_after", 3, 4, num_layers=3, seed=0, batch_first=True)
    x = rng.standard_normal((2, 6, 3))  # (B, T, D)
    bottom = diagnose.activations(layer, x, num_layer=0)
    first_only = diagnose.activations(layer, x[0], num_layer=0)  # (T, D): one sequence
    for name in bottom:
        assert bottom[name].shape == (6, 4)
        np.testing.assert_allclose(bottom[name], first_only[name], rtol=1e-12)
    bottom_layer = rnnkit.GRU(3, 4, batch_first=True, dtype=np.float64)
    bottom_layer.load_state_dict({k: v for k, v in layer.state_dict().items() if k.endswith("l0")})
    y, _, _ = bottom_layer.forward(x)
    np.testing.assert_allclose(bottom["h"], y[0], rtol=1e-12)
    with pytest.raises(ValueError, match="num_layer must index one of the 3 layers"):
        diagnose.activations(layer, x, num_layer=3)


# -- plots ------------------------------------------------------------------------------------


def _assert_png(path):
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5000, path


@pytest.fixture
def mpl():
    return pytest.importorskip("matplotlib")


def test_training_curves_png(mpl, tmp_path):
    rows = [{"step": str(s), "kind": "train", "loss": str(5.0 / s + 1.0)} for s in range(1, 300)]
    rows += [{"step": str(s), "kind": "val", "loss": str(5.0 / s + 1.2)} for s in (100, 200, 299)]
    rows += [{"step": "150", "kind": "skip", "loss": "nan"}, {"step": "151", "kind": "train"}]
    path = plots.training_curves(rows, tmp_path / "training.png")
    assert path == tmp_path / "training.png"
    _assert_png(path)
    _assert_png(plots.training_curves([], tmp_path / "empty.png"))  # says "no finite losses"


def test_forecast_png(mpl, tmp_path):
    t = np.arange(60.0)
    series = np.sin(t / 5)
    path = plots.forecast(
        series[48:],
        series[48:] + 0.1,
        tmp_path / "forecast.png",
        history=series[:48],
        baselines={"naive": np.full(12, series[47]), "seasonal": series[36:48]},
        index=[f"day {i}" for i in range(60)],
        title="sine",
    )
    _assert_png(path)
    _assert_png(plots.forecast([1.0, 2.0], [1.5, 2.5], str(tmp_path / "short.png")))
    with pytest.raises(ValueError, match="forecast must have the shape of actual"):
        plots.forecast([1.0, 2.0], [1.0], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="index must have one label per point, 0 \\+ 2 = 2"):
        plots.forecast([1.0, 2.0], [1.0, 2.0], tmp_path / "bad.png", index=["a"])


def test_confusion_matrix_png(mpl, tmp_path):
    cm = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 0]])  # a class never seen: a zero row
    _assert_png(plots.confusion_matrix(cm, ["a", "b", "c"], tmp_path / "cm.png", title="test"))
    with pytest.raises(ValueError, match="classes must have 3 labels"):
        plots.confusion_matrix(cm, ["a", "b"], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="square"):
        plots.confusion_matrix(np.ones((2, 3)), ["a", "b"], tmp_path / "bad.png")


def test_activations_png(mpl, tmp_path):
    text = "hello world\n"
    acts = diagnose.activations(rnnkit.LSTM(3, 8, seed=0), np.ones((len(text), 1, 3), np.float32))
    _assert_png(plots.activations(acts, tmp_path / "all.png", title="LSTM", xlabels=list(text)))
    _assert_png(plots.activations(acts["c"], tmp_path / "c.png", title="c", ylabel="cell"))
    with pytest.raises(ValueError, match="xlabels must have one label per time step"):
        plots.activations(acts["h"], tmp_path / "bad.png", xlabels=["a"])
    with pytest.raises(ValueError, match="2-D"):
        plots.activations(np.ones(4), tmp_path / "bad.png")


def test_gradient_flow_png(mpl, tmp_path):
    curves = {
        "rnn": np.stack([diagnose.gradient_flow("rnn", 30, 8, seed=s) for s in range(2)]),
        "lstm": diagnose.gradient_flow("lstm", 30, 8, forget_bias=1.0),
        "underflow": np.r_[1.0, 1e-3, 0.0, 0.0],  # zeros stay off the log scale
    }
    _assert_png(plots.gradient_flow(curves, tmp_path / "flow.png", title="flow"))
    with pytest.raises(ValueError, match="non-empty mapping"):
        plots.gradient_flow({}, tmp_path / "bad.png")


def test_available_is_true_with_matplotlib_and_false_without(mpl, monkeypatch, tmp_path):
    assert plots.available() is True
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # what an absent package looks like
    assert plots.available() is False
    with pytest.raises(ImportError, match=r"pip install 'rnnkit\[plot\]'"):
        plots.gradient_flow({"a": [1.0, 0.5]}, tmp_path / "x.png")


def test_importing_the_library_does_not_import_matplotlib():
    code = (
        "import sys, rnnkit, rnnkit.apps.plots, rnnkit.apps.diagnose; "
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the command ------------------------------------------------------------------------------


def test_cli_gradient_flow_table_csv_and_plot(tmp_path):
    out, table = tmp_path / "flow.png", tmp_path / "flow.csv"
    result = CliRunner().invoke(
        cli,
        [
            "diagnose",
            "gradient-flow",
            "--length",
            "30",
            "--hidden-size",
            "16",
            "--seeds",
            "2",
            "--cells",
            "rnn,lstm",
            "--out",
            str(out),
            "--csv",
            str(table),
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "tanh RNN" in lines[1] and "LSTM (forget bias 1)" in lines[1]
    assert [line.split()[0] for line in lines[2:6]] == ["1", "10", "25", "30"]
    rows = list(csv.reader(table.read_text(encoding="utf-8").splitlines()))
    assert rows[0] == ["distance", "tanh RNN", "LSTM (forget bias 1)"]
    assert len(rows) == 1 + 31 and float(rows[1][1]) == pytest.approx(1.0)
    rnn_30, lstm_30 = float(rows[-1][1]), float(rows[-1][2])
    assert lstm_30 > 10 * rnn_30
    if plots.available():
        _assert_png(out)
        assert f"plot: {out}" in result.output


def test_cli_gradient_flow_without_matplotlib_and_bad_cells(tmp_path, monkeypatch):
    monkeypatch.setattr(plots, "available", lambda: False)
    out = tmp_path / "flow.png"
    result = CliRunner().invoke(
        cli,
        [
            "diagnose",
            "gradient-flow",
            "--length",
            "5",
            "--hidden-size",
            "4",
            "--seeds",
            "1",
            "--cells",
            "gru",
            "--forget-bias",
            "pytorch",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "plot skipped" in result.output and "rnnkit[plot]" in result.output
    assert not out.exists()
    bad = CliRunner().invoke(cli, ["diagnose", "gradient-flow", "--cells", "rnn,cnn"])
    assert bad.exit_code == 2 and "expected a comma-separated list" in bad.output


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    """A tiny trained character language model in a run folder, made by `rnnkit lm train`."""
    root = tmp_path_factory.mktemp("runs")
    corpus = root / "corpus.txt"
    corpus.write_text("to be or not to be, that is the question\n" * 20, encoding="utf-8")
    result = CliRunner().invoke(
        cli,
        [
            "lm",
            "train",
            "--text",
            str(corpus),
            "--hidden-size",
            "8",
            "--num-layers",
            "2",
            "--embedding-dim",
            "4",
            "--steps",
            "3",
            "--bptt",
            "16",
            "--batch-size",
            "4",
            "--sample-length",
            "5",
            "--runs-dir",
            str(root),
            "--name",
            "tiny",
            "--no-plot",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    return root / "tiny"


def test_cli_activations(lm_run, tmp_path, monkeypatch):
    out = tmp_path / "acts.png"
    result = CliRunner().invoke(
        cli,
        [
            "diagnose",
            "activations",
            "--run",
            str(lm_run),
            "--text",
            "to be, or",
            "--out",
            str(out),
            "--units",
            "4",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "LSTM layer 1 of 0..1, 8 units, 9 characters" in result.output
    for name in ("h", "c", "i", "f", "g", "o"):
        assert any(line.split()[:1] == [name] for line in result.output.splitlines()), name
    if plots.available():
        _assert_png(out)
    monkeypatch.setattr(plots, "available", lambda: False)  # the statistics alone, faster
    lower = CliRunner().invoke(
        cli,
        [
            "diagnose",
            "activations",
            "--run",
            str(lm_run),
            "--text",
            "xyz",
            "--layer",
            "0",
            "--out",
            str(tmp_path / "lower.png"),
        ],
    )
    assert lower.exit_code == 0, lower.output
    assert "3 character(s) of the text are not in the model's vocabulary" in lower.output
    assert "LSTM layer 0 of 0..1" in lower.output and "plot skipped" in lower.output


def test_cli_activations_errors(lm_run, tmp_path):
    missing = CliRunner().invoke(
        cli,
        [
            "diagnose",
            "activations",
            "--run",
            str(tmp_path / "nope"),
            "--text",
            "a",
        ],
    )
    assert missing.exit_code == 2 and "run folder not found" in missing.output
    bad_layer = CliRunner().invoke(
        cli,
        [
            "diagnose",
            "activations",
            "--run",
            str(lm_run),
            "--text",
            "to be",
            "--layer",
            "2",
        ],
    )
    assert bad_layer.exit_code == 2 and "--layer must be in [0, 1]" in bad_layer.output
    empty = CliRunner().invoke(cli, ["diagnose", "activations", "--run", str(lm_run), "--text", ""])
    assert empty.exit_code == 2 and "--text is empty" in empty.output
