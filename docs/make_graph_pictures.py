"""Make the pictures of docs/studying_the_graph.md, as SVG in docs/pictures/.

    PYTHONPATH=. python docs/make_graph_pictures.py            # all of them
    PYTHONPATH=. python docs/make_graph_pictures.py scalar     # some of them

Needs Graphviz's `dot` program. The graphs are built exactly as in the
walkthrough, so the pictures show what its code draws.
"""
import sys
from pathlib import Path

import microgradbn as mg

OUT = Path(__file__).resolve().parent / "pictures"


def scalar_example():
    """The walkthrough's first graph: L = (a * b + c) * f, micrograd's example."""
    a = mg.Tensor(2.0, requires_grad=True, name="a")
    b = mg.Tensor(-3.0, requires_grad=True, name="b")
    c = mg.Tensor(10.0, requires_grad=True, name="c")
    f = mg.Tensor(-2.0, requires_grad=True, name="f")
    L = (a * b + c) * f
    L.name = "L"
    return L


def mlp_example():
    """The walkthrough's MLP with BN on a fixed batch: model, x, target, loss."""
    import microgradbn.nn as nn
    import microgradbn.nn.functional as F

    mg.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8, bias=False), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
    x, target = mg.randn(32, 2), mg.randn(32, 1)
    loss = F.mse_loss(model(x), target)
    loss.name = "loss"
    return model, x, target, loss


def scalar(path):
    mg.graph.draw(scalar_example(), path)


def scalar_saved(path):
    mg.graph.draw(scalar_example(), path, show_saved=True)


def mlp_bn_fused(path):
    model, _, _, loss = mlp_example()
    mg.graph.draw(loss, path, params=model)


def mlp_bn_decomposed(path):
    model, _, _, loss = mlp_example()
    mg.graph.draw(loss, path, params=model, decompose_bn=True)


def mlp_bn_primitives(path):
    """The same network with BN built from primitive ops (F.batch_norm_primitives)."""
    import microgradbn.nn.functional as F

    model, x, target, _ = mlp_example()
    bn = model[1]
    h = F.batch_norm_primitives(model[0](x), None, None, bn.weight, bn.bias, training=True)
    mg.graph.draw(F.mse_loss(model[3](F.relu(h)), target), path, params=model)


PICTURES = {f.__name__: f for f in (scalar, scalar_saved, mlp_bn_fused, mlp_bn_decomposed,
                                    mlp_bn_primitives)}


def main(names, out=OUT):
    unknown = sorted(set(names) - set(PICTURES))
    if unknown:
        raise SystemExit(f"unknown picture(s) {unknown}; choose from {sorted(PICTURES)}")
    out.mkdir(parents=True, exist_ok=True)
    for name in names or PICTURES:
        path = out / f"{name}.svg"
        PICTURES[name](path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
