"""Figure 1 of the Batch Normalization paper, on the bundled MNIST subset.

    python -m microgradbn.experiments.figure1 --out fig1/      # about a minute

The paper's network: 784 inputs, 3 fully connected hidden layers of 100
sigmoid units, 10 outputs, cross-entropy, weights drawn from a small Gaussian,
mini-batches of 60, trained with and without BN (with BN: Linear without
bias, then BN, then the sigmoid) by plain SGD. The defaults (10,000 steps at
learning rate 0.1) make the picture in the README. Recorded over training:
  (a) test accuracy of both networks;
  (b, c) the 15th, 50th and 85th percentiles, over the test images, of the
      input to one sigmoid of the last hidden layer (with BN that input is
      BN's output).
and printed at the end: the first step at which each network reached 90%
test accuracy, how far the median moved and how the 15th-85th spread changed.
Writes figure1.csv and figure1.json to --out, and figure1.png when matplotlib
is installed (the `plot` extra); without it, says so and keeps the data.
"""
import argparse
import csv
import json
import os
import sys
import time

import numpy as np

import microgradbn as mg
from microgradbn import nn, optim
from microgradbn.datasets import DataLoader, load_mnist
from microgradbn.nn import functional as F

PERCENTILES = (15, 50, 85)


def build(bn, init_std):
    layers, sizes = [], (784, 100, 100, 100)
    for n_in, n_out in zip(sizes, sizes[1:]):
        layers.append(nn.Linear(n_in, n_out, bias=not bn))
        if bn:
            layers.append(nn.BatchNorm1d(n_out))
        layers.append(nn.Sigmoid())
    layers.append(nn.Linear(sizes[-1], 10))
    for module in layers:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, init_std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return nn.Sequential(*layers)


def measure(model, x_test, y_test, unit):
    """Test accuracy (eval mode) and the percentiles of the input to sigmoid `unit`
    of the last hidden layer, as training computes it: with BN, normalised by the
    statistics of the batch at hand (here all the test images), the running
    averages left untouched. (In eval mode the first measurement would show the
    running averages' initial values, mean 0 and variance 1, not what the
    sigmoid sees.)"""
    model.eval()
    last_sigmoid = max(i for i, m in enumerate(model) if isinstance(m, nn.Sigmoid))
    with mg.no_grad():
        x = mg.from_numpy(x_test)
        accuracy = float((model(x).data.argmax(axis=1) == y_test).mean())
        for module in model[:last_sigmoid]:
            if isinstance(module, nn.BatchNorm1d):
                x = F.batch_norm(x, None, None, module.weight, module.bias, training=True, eps=module.eps)
            else:
                x = module(x)
    model.train()
    return accuracy, [float(v) for v in np.percentile(x.data[:, unit], PERCENTILES)]


def run(bn, args, x_train, y_train, x_test, y_test):
    mg.manual_seed(args.seed)
    model = build(bn, args.init_std)
    optimizer = optim.SGD(model.parameters(), lr=args.lr)
    loader = DataLoader(x_train, y_train, args.batch_size, shuffle=True, seed=args.seed, drop_last=True)
    rows, step = [], 0
    while step < args.steps:
        for xb, yb in loader:
            if step % args.eval_every == 0:
                rows.append(_row(bn, step, *measure(model, x_test, y_test, args.unit)))
            loss = F.cross_entropy(model(mg.from_numpy(xb)), mg.from_numpy(yb))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step == args.steps:
                break
    rows.append(_row(bn, step, *measure(model, x_test, y_test, args.unit)))
    return rows


def _row(bn, step, accuracy, percentiles):
    return dict(bn=bn, step=step, test_acc=accuracy, **{f"p{q}": v for q, v in zip(PERCENTILES, percentiles)})


def summary(rows):
    """One network's run in one line: how soon it reached 90% test accuracy, and how
    much its sigmoid input's distribution moved (the median's range, the 15th-85th spread)."""
    reached = next((r["step"] for r in rows if r["test_acc"] >= 0.9), None)
    medians = [r["p50"] for r in rows]
    first, final = rows[0], rows[-1]
    return (f"{'with' if final['bn'] else 'without'} BN: 90% test accuracy "
            + (f"first at step {reached}" if reached is not None else "not reached")
            + f", {final['test_acc']:.4f} after {final['step']} steps; sigmoid input: the median moved over "
            f"{max(medians) - min(medians):.2f} (max - min), the 15th-85th percentile spread went from "
            f"{first['p85'] - first['p15']:.2f} to {final['p85'] - final['p15']:.2f}")


def plot(rows, path):
    """The three panels of Figure 1; False when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    axes[2].sharey(axes[1])  # one scale, so the two distributions compare at a glance
    for bn, style in ((False, "--"), (True, "-")):
        mine = [r for r in rows if r["bn"] == bn]
        steps = [r["step"] for r in mine]
        label = "With BN" if bn else "Without BN"
        axes[0].plot(steps, [r["test_acc"] for r in mine], style, label=label)
        panel = axes[2 if bn else 1]
        for q in PERCENTILES:
            panel.plot(steps, [r[f"p{q}"] for r in mine], style, color="k")
        panel.set_title(f"(b) {label}" if not bn else f"(c) {label}")
        panel.set_xlabel("training steps")
    axes[1].set_ylabel("sigmoid input: 15th, 50th, 85th percentile")
    axes[0].set_title("(a) test accuracy")
    axes[0].set_xlabel("training steps")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m microgradbn.experiments.figure1",
                                description="Figure 1 of the BN paper: MNIST, 3x100 sigmoid, with and without BN",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--steps", type=int, default=10000, help="training steps per network")
    p.add_argument("--eval-every", type=int, default=200, help="steps between measurements")
    p.add_argument("--out", default="figure1", help="output directory")
    p.add_argument("--batch-size", type=int, default=60)
    p.add_argument("--lr", type=float, default=0.1, help="SGD learning rate")
    p.add_argument("--init-std", type=float, default=0.1, help="std of the Gaussian initial weights")
    p.add_argument("--unit", type=int, default=0, help="which sigmoid of the last hidden layer to follow")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.steps < 1 or args.eval_every < 1 or args.batch_size < 2:
        p.error("--steps and --eval-every must be at least 1, --batch-size at least 2")
    if not 0 <= args.unit < 100:
        p.error(f"--unit must be in [0, 99], got {args.unit}")
    return args


def main(argv=None):
    args = parse_args(argv)
    x_train, y_train = load_mnist("train")
    x_test, y_test = load_mnist("test")
    start = time.perf_counter()
    rows = []
    for bn in (False, True):
        rows += run(bn, args, x_train, y_train, x_test, y_test)
        print(summary([r for r in rows if r["bn"] == bn]))
    os.makedirs(args.out, exist_ok=True)
    csv_path, json_path, png_path = (os.path.join(args.out, "figure1." + ext) for ext in ("csv", "json", "png"))
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(json_path, "w") as f:
        json.dump(dict(config=vars(args), percentiles=PERCENTILES, rows=rows), f, indent=1)
    print(f"wrote {csv_path} and {json_path} ({time.perf_counter() - start:.1f} s)")
    if plot(rows, png_path):
        print(f"wrote {png_path}")
    else:
        print("no plot: matplotlib is not installed (pip install matplotlib, or the extra microgradbn[plot])")
    return 0


if __name__ == "__main__":
    sys.exit(main())
