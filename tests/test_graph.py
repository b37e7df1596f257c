"""mg.graph: inspectable nodes, to_dot/draw, summary, trace, BN decomposed, scale."""
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import microgradbn as mg
from microgradbn import autograd
from microgradbn.autograd import AccumulateGrad, Function

NODE = re.compile(r'^\s*(\w+) \[label="((?:[^"\\]|\\.)*)"(.*)\];$')
EDGE = re.compile(r"^\s*(\w+) -> (\w+)( \[.*\])?;$")


def parse_dot(text):
    """{id: (label, attributes)} and [(tail, head, attributes)] of a DOT text."""
    assert text.startswith("digraph {") and text.rstrip().endswith("}")
    nodes, edges = {}, []
    for line in text.splitlines():
        if m := NODE.match(line):
            assert m.group(1) not in nodes, f"node {m.group(1)} declared twice"
            nodes[m.group(1)] = (m.group(2).replace("\\n", "\n"), m.group(3))
        elif m := EDGE.match(line):
            edges.append((m.group(1), m.group(2), m.group(3) or ""))
    for tail, head, _ in edges:
        assert tail in nodes and head in nodes, (tail, head)
    return nodes, edges


def by_label(nodes, first_line):
    found = [k for k, (label, _) in nodes.items() if label.split("\n")[0] == first_line]
    assert len(found) == 1, (first_line, found)
    return found[0]


def small_graph():
    a = mg.Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True, name="a")
    b = mg.tensor([1.0, -1.0], requires_grad=True)
    h = a * b
    c = h + a
    y = (c * c).sum()
    return a, b, h, y


# ---- a fused BatchNorm node written here in NumPy (the real one is F.batch_norm) ----

class BatchNorm(Function):
    """y = (x - mean) / sqrt(var + eps) * w + b over dim 1 of (N, C, *); test-only."""

    def forward(self, x, w, b, training=True, eps=1e-5):
        self.training = training
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
        rstd = 1 / np.sqrt(var + eps)
        xhat = (x - mean) * rstd
        self.axes, self.shape = axes, shape
        self.save_for_backward(xhat, rstd, w)
        return xhat * w.reshape(shape) + b.reshape(shape)

    def backward(self, dy):
        xhat, rstd, w = self.saved_tensors
        n = dy.size // dy.shape[1]
        g = dy * w.reshape(self.shape)
        dx = rstd / n * (n * g - g.sum(self.axes, keepdims=True)
                         - xhat * (g * xhat).sum(self.axes, keepdims=True))
        return dx, (dy * xhat).sum(self.axes), dy.sum(self.axes)


def bn_model(training=True, weight_grad=True):
    mg.manual_seed(0)
    x = mg.randn(4, 3, requires_grad=True)
    x.name = "x"
    w = mg.ones(3, requires_grad=weight_grad)
    b = mg.zeros(3, requires_grad=True)
    y = BatchNorm.apply(x * 2.0, w, b, training=training)
    return x, w, b, (y * y).sum()


# ---- 1. inspectable nodes -----------------------------------------------------

def test_nodes_have_names_next_functions_saved_tensors_and_output_meta():
    a, b, h, y = small_graph()
    assert y.grad_fn.name() == "SumBackward"
    mul = y.grad_fn.next_functions[0][0]
    assert mul.name() == "MulBackward" and mul.output_meta == ((2, 2), np.float32)
    add = mul.next_functions[0][0]
    assert add is mul.next_functions[1][0] and add.name() == "AddBackward"
    assert add.next_functions[0] == (h.grad_fn, 0)
    assert isinstance(add.next_functions[1][0], AccumulateGrad)
    assert add.next_functions[1][0].variable is a
    assert [(t.shape, t.dtype, t.nbytes) for t in h.grad_fn.saved_tensors] == [
        ((2, 2), np.float32, 16), ((2,), np.float32, 8)]
    y.backward()
    assert h.grad_fn.saved_tensors == ()


def test_node_structure_matches_pytorch():
    torch = pytest.importorskip("torch")

    def structure(root, name_of, leaf_of):
        rows, seen, stack = [], set(), [root]
        while stack:
            node = stack.pop()
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            rows.append((name_of(node), tuple(name_of(n) if n is not None else None
                                               for n, _ in node.next_functions), leaf_of(node)))
            stack.extend(n for n, _ in reversed(node.next_functions))
        return rows

    data = np.array([[0.5, -1.0], [2.0, 3.0]], dtype=np.float32)
    ours = [mg.tensor(data, requires_grad=True), mg.tensor(data[0], requires_grad=True)]
    theirs = [torch.tensor(data, requires_grad=True), torch.tensor(data[0], requires_grad=True)]
    outs = []
    for x, w in (ours, theirs):
        outs.append((((x * w) - x / 3.0) * -x + 1.0).sum())
    mine = structure(outs[0].grad_fn, lambda n: n.name(),
                     lambda n: n.variable.shape if isinstance(n, AccumulateGrad) else None)
    torchs = structure(outs[1].grad_fn, lambda n: re.sub(r"^torch::autograd::|\d+$", "", n.name()),
                       lambda n: tuple(n.variable.shape) if hasattr(n, "variable") else None)
    assert mine == torchs


def test_nodes_in_order_is_the_engines_order_reversed():
    *_, y = small_graph()
    order = mg.graph.nodes_in_order([y.grad_fn])
    assert order == autograd.topological_order(y.grad_fn)[::-1]
    positions = {id(n): i for i, n in enumerate(order)}
    for node in order:
        for next_node, _ in node.next_functions:
            assert positions[id(next_node)] < positions[id(node)]


# ---- 2. to_dot and draw -----------------------------------------------------------

def test_to_dot_nodes_and_edges():
    a, b, h, y = small_graph()
    y.name = "loss"
    nodes, edges = parse_dot(mg.graph.to_dot(y, params={"b": b}))
    labels = sorted(label for label, _ in nodes.values())
    assert labels == sorted(["a\n(2, 2)", "b\n(2,)", "MulBackward\n(2, 2)", "AddBackward\n(2, 2)",
                             "MulBackward\n(2, 2)", "SumBackward\n()", "loss\n()"])
    a_id, b_id, add, out = (by_label(nodes, s) for s in ("a", "b", "AddBackward", "loss"))
    mul_h = [t for t, hd, _ in edges if hd == add and t != a_id][0]
    assert {(t, hd) for t, hd, _ in edges} == {
        (a_id, mul_h), (b_id, mul_h), (mul_h, add), (a_id, add), ("n4", "n5"), (add, "n4"),
        ("n5", out)}
    assert [(t, hd) for t, hd, _ in edges].count((add, "n4")) == 2  # c * c: two edges
    assert 'fillcolor="lightblue"' in nodes[a_id][1] and 'darkolivegreen1' in nodes[out][1]


def test_to_dot_is_deterministic_and_has_no_addresses():
    texts = [mg.graph.to_dot(small_graph()[3], show_saved=True) for _ in range(2)]
    assert texts[0] == texts[1]
    assert "0x" not in texts[0] and "object at" not in texts[0]
    nodes, _ = parse_dot(texts[0])
    assert all(re.fullmatch(r"n\d+(_s\d+|_saved)?|out\d+", k) for k in nodes)


def test_to_dot_names_from_a_module_non_leaf_tensors_and_tensor_name():
    a, b, h, y = small_graph()

    class Model:  # what to_dot asks of a Module
        def named_parameters(self):
            return iter([("layer.weight", b)])

    nodes, _ = parse_dot(mg.graph.to_dot(y, params=Model()))
    assert by_label(nodes, "layer.weight") and by_label(nodes, "a")  # a: its Tensor.name
    nodes, _ = parse_dot(mg.graph.to_dot(y, params=[("hidden", h), ("a_param", a)]))
    assert "MulBackward\nhidden\n(2, 2)" in [label for label, _ in nodes.values()]
    assert by_label(nodes, "a_param")  # params wins over Tensor.name


def test_to_dot_saved_tensors_before_and_after_backward():
    a, b, h, y = small_graph()
    nodes, edges = parse_dot(mg.graph.to_dot(y, show_saved=True))
    saved = {k: label for k, (label, _) in nodes.items() if label.startswith("saved")}
    # h = a * b saves a (16 B) and b (8 B); c * c saves c once; add and sum save nothing
    assert sorted(saved.values()) == ["saved\n(2, 2)\n16 B", "saved\n(2, 2)\n16 B", "saved\n(2,)\n8 B"]
    assert all((k, k.split("_")[0], " [style=dashed, arrowhead=none]") in edges for k in saved)
    y.backward()
    nodes, _ = parse_dot(mg.graph.to_dot(y, show_saved=True))
    freed = [k for k, (label, _) in nodes.items() if label == "saved tensors: freed by backward"]
    assert sorted(freed) == ["n2_saved", "n4_saved"]


def test_to_dot_several_outputs_share_nodes_and_float64_is_shown():
    x = mg.tensor([1.0, 2.0], dtype=mg.float64, requires_grad=True)
    h = x * x
    nodes, edges = parse_dot(mg.graph.to_dot([h.sum(), (h * 3.0).sum()]))
    assert [label for label, _ in nodes.values()].count("MulBackward\n(2,) float64") == 2
    assert {k for k in nodes if k.startswith("out")} == {"out0", "out1"}
    assert sum(1 for t, _, _ in edges if t == "n1") == 2  # x * x feeds both branches


def test_to_dot_refuses_a_tensor_without_graph():
    with pytest.raises(ValueError, match="requires_grad=True"):
        mg.graph.to_dot(mg.tensor([1.0]) * 2.0)
    with pytest.raises(TypeError, match="Tensor"):
        mg.graph.to_dot(np.ones(2))
    leaf = mg.tensor([1.0], requires_grad=True)
    nodes, edges = parse_dot(mg.graph.to_dot(leaf))
    assert len(nodes) == 2 and edges == [("n0", "out0", "")]


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` not installed")
@pytest.mark.parametrize("suffix,magic", [(".svg", b"<svg"), (".png", b"\x89PNG")])
def test_draw_renders_with_dot(tmp_path, suffix, magic):
    *_, y = bn_model()
    for decompose in (False, True):
        path = mg.graph.draw(y, tmp_path / f"g{decompose}{suffix}", show_saved=True,
                             decompose_bn=decompose)
        assert magic in open(path, "rb").read(600)


def test_draw_dot_file_bad_suffix_and_missing_program(tmp_path, monkeypatch):
    *_, y = small_graph()
    path = mg.graph.draw(y, tmp_path / "g.dot")
    assert open(path, encoding="utf-8").read() == mg.graph.to_dot(y)
    with pytest.raises(ValueError, match=r"\.svg"):
        mg.graph.draw(y, tmp_path / "g.jpeg2000")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        mg.graph.draw(y, tmp_path / "g.svg")


def test_draw_without_path_gives_a_graphviz_source_or_says_what_to_install(monkeypatch):
    *_, y = small_graph()
    try:
        import graphviz
    except ImportError:
        with pytest.raises(RuntimeError, match=r"pip install microgradbn\[graph\]"):
            mg.graph.draw(y)
        return
    assert isinstance(mg.graph.draw(y), graphviz.Source)
    assert mg.graph.draw(y).source == mg.graph.to_dot(y)


# ---- 5. BN fused and decomposed --------------------------------------------------

PAPER_STEPS = ["μ = mean(x)", "x − μ", "(x − μ)²", "σ² = mean((x − μ)²)", "σ² + ε", "√(σ² + ε)",
               "x̂ = (x − μ) / √(σ² + ε)", "γ · x̂", "y = γ · x̂ + β"]


def test_bn_fused_is_one_node_decomposed_is_the_papers_nine_steps():
    x, w, b, y = bn_model()
    params = {"bn.weight": w, "bn.bias": b}
    # forward order: n0 x, n1 x * 2, n2 weight, n3 bias, n4 BN, n5 y * y, n6 sum
    nodes, edges = parse_dot(mg.graph.to_dot(y, params=params))
    assert [nodes[f"n{i}"][0].split("\n")[0] for i in range(7)] == [
        "x", "MulBackward", "bn.weight", "bn.bias", "BatchNormBackward", "MulBackward", "SumBackward"]
    assert [(t, hd) for t, hd, _ in edges if "n4" in (t, hd)] == [
        ("n1", "n4"), ("n2", "n4"), ("n3", "n4"), ("n4", "n5"), ("n4", "n5")]
    text = mg.graph.to_dot(y, params=params, decompose_bn=True)
    assert "subgraph cluster_n4 {" in text and "BatchNormBackward, decomposed" in text
    nodes, edges = parse_dot(text)
    assert "n4" not in nodes
    s = {label.split("\n")[0]: k for k, (label, attrs) in nodes.items() if "lightyellow" in attrs}
    assert sorted(s) == sorted(PAPER_STEPS)
    assert nodes[s["μ = mean(x)"]][0] == "μ = mean(x)\n(3,)"
    assert nodes[s["x − μ"]][0] == "x − μ\n(4, 3)"
    xhat, y_step = s["x̂ = (x − μ) / √(σ² + ε)"], s["y = γ · x̂ + β"]
    expected = {
        ("n1", s["μ = mean(x)"]), ("n1", s["x − μ"]), (s["μ = mean(x)"], s["x − μ"]),
        (s["x − μ"], s["(x − μ)²"]), (s["(x − μ)²"], s["σ² = mean((x − μ)²)"]),
        (s["σ² = mean((x − μ)²)"], s["σ² + ε"]), (s["σ² + ε"], s["√(σ² + ε)"]),
        (s["x − μ"], xhat), (s["√(σ² + ε)"], xhat), (xhat, s["γ · x̂"]), ("n2", s["γ · x̂"]),
        (s["γ · x̂"], y_step), ("n3", y_step)}
    into_cluster = {(t, hd) for t, hd, _ in edges if hd.startswith("n4_")}
    assert into_cluster == expected
    # what read BN's output (y * y, twice) now reads the last step
    assert [(t, hd) for t, hd, _ in edges if hd == "n5"] == [(y_step, "n5")] * 2


def test_bn_eval_mode_and_a_frozen_weight_are_constants_in_the_cluster():
    *_, y = bn_model(training=False, weight_grad=False)
    nodes, edges = parse_dot(mg.graph.to_dot(y, decompose_bn=True))
    steps = [label.split("\n")[0] for label, attrs in nodes.values() if "lightyellow" in attrs]
    assert steps == ["x − running_mean", "running_var + ε", "√(running_var + ε)",
                     "x̂ = (x − running_mean) / √(running_var + ε)", "γ · x̂", "y = γ · x̂ + β"]
    constants = sorted(label for label, attrs in nodes.values() if "ellipse" in attrs)
    assert constants == ["running_mean", "running_var", "γ"]


@pytest.mark.parametrize("has_weight,has_bias,last", [(False, True, "y = x̂ + β"), (True, False, "γ · x̂"),
                                                       (False, False, "x̂ = (x − μ) / √(σ² + ε)")])
def test_bn_without_weight_or_bias_has_no_scale_or_shift_step(has_weight, has_bias, last):
    x = mg.randn(4, 3, requires_grad=True)
    y = BatchNorm.apply(x, mg.ones(3), mg.zeros(3))
    y.grad_fn.has_weight, y.grad_fn.has_bias = has_weight, has_bias
    steps = mg.graph.decomposition(y.grad_fn)
    assert steps[-1].formula == last and len(steps) == 7 + has_weight + has_bias
    nodes, _ = parse_dot(mg.graph.to_dot(y, decompose_bn=True))
    constants = [label for label, attrs in nodes.values() if "ellipse" in attrs]
    assert constants == ["γ"] * has_weight + ["β"] * has_bias  # present, but need no grad


def test_a_node_with_its_own_decomposition_and_show_saved_on_a_cluster():
    class Square(Function):
        def forward(self, x):
            self.save_for_backward(x)
            return x * x

        def backward(self, grad):
            return 2 * self.saved_tensors[0] * grad

        def decomposition(self):
            return [mg.graph.Step("copy", "x", (0,)), mg.graph.Step("sq", "x · x", (0, "copy"), (2,))]

    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = Square.apply(x)
    fused, _ = parse_dot(mg.graph.to_dot(y))
    assert by_label(fused, "SquareBackward")
    nodes, edges = parse_dot(mg.graph.to_dot(y, decompose_bn=True, show_saved=True))
    assert nodes["n1_0"][0] == "x" and nodes["n1_1"][0] == "x · x\n(2,)"
    assert {(t, hd) for t, hd, _ in edges} == {("n0", "n1_0"), ("n0", "n1_1"), ("n1_0", "n1_1"),
                                               ("n1_s0", "n1_1"), ("n1_1", "out0")}


# ---- 3. summary -----------------------------------------------------------------------

def test_summary_rows_flops_saved_memory_and_totals():
    a, b, h, y = small_graph()
    s = mg.graph.summary(y, params={"b": b})
    assert [(r.index, r.node, r.name, r.inputs) for r in s.rows] == [
        (0, "AccumulateGrad", "a", ()), (1, "AccumulateGrad", "b", ()), (2, "MulBackward", "", (0, 1)),
        (3, "AddBackward", "", (2, 0)), (4, "MulBackward", "", (3, 3)), (5, "SumBackward", "", (4,))]
    assert [r.flops for r in s.rows] == [0, 0, 4, 4, 4, 4]
    assert [r.saved_bytes for r in s.rows] == [0, 0, 24, 0, 16, 0]
    assert s.total_flops == 16 and s.total_saved_bytes == 40
    text = str(s)
    assert "MulBackward" in text and "6 nodes (2 leaves, 6 leaf elements)" in text
    assert "forward FLOPs 16" in text and "saved for backward 40 B" in text
    y.backward()
    after = mg.graph.summary(y)
    assert [r.freed for r in after.rows] == [False, False, True, False, True, False]
    assert after.total_saved_bytes == 0 and "freed" in str(after)


def test_summary_flops_of_matmul_batchnorm_and_unknown_ops():
    class MatMul(Function):
        def forward(self, a, b):
            return a @ b

    class Mystery(Function):
        def forward(self, a):
            return a

    a = mg.ones(5, 7, requires_grad=True)
    m = MatMul.apply(a, mg.ones(7, 3))
    assert mg.graph.flops(m.grad_fn) == 2 * 5 * 7 * 3
    *_, y = bn_model()
    bn = y.grad_fn.next_functions[0][0].next_functions[0][0]
    assert bn.name() == "BatchNormBackward" and mg.graph.flops(bn) == 7 * 12
    z = Mystery.apply(a)
    assert mg.graph.flops(z.grad_fn) is None
    assert "(+ 1 ops of unknown cost)" in str(mg.graph.summary(z))


# ---- 4. trace -------------------------------------------------------------------------

def test_trace_records_gradients_norms_times_and_leaves():
    a, b, h, y = small_graph()
    with mg.graph.trace(params={"b": b}) as t:
        assert autograd._trace is t
        y.backward()
    assert autograd._trace is None
    rows = t.rows
    assert [(r.step, r.index, r.node) for r in rows] == [
        (1, 5, "SumBackward"), (2, 4, "MulBackward"), (3, 3, "AddBackward"), (4, 2, "MulBackward")]
    c = (a.data * b.data + a.data).astype(np.float64)
    assert rows[1].grad_shape == (2, 2) and rows[1].grad_norm == pytest.approx(2.0)
    assert rows[1].sent == (("#3", pytest.approx(np.linalg.norm(c))),) * 2  # d(c*c)/dc_i = c
    assert rows[3].sent[1][0] == "#1 b"
    assert all(r.seconds >= 0 for r in rows) and t.total_seconds == sum(r.seconds for r in rows)
    leaves = {name: norm for _, _, name, _, norm in t.leaves}
    assert leaves["a"] == pytest.approx(np.linalg.norm(a.grad.data), rel=1e-6)
    assert leaves["b"] == pytest.approx(np.linalg.norm(b.grad.data), rel=1e-6)
    text = str(t)
    assert "#4 MulBackward" in text and "gradient reaching each leaf" in text and "#1 b" in text


def test_trace_numbers_as_summary_counts_passes_and_restores_the_engine():
    a, b, h, y = small_graph()
    numbering = {r.index: r.node for r in mg.graph.summary(y).rows}
    with mg.graph.trace() as t:
        y.backward(retain_graph=True)
        y.backward()
    assert [r.backward for r in t.rows] == [1] * 4 + [2] * 4
    assert all(numbering[r.index] == r.node for r in t.rows)
    assert len(t.leaves) == 4
    with pytest.raises(ZeroDivisionError):
        with mg.graph.trace():
            1 / 0
    assert autograd._trace is None
    with mg.graph.trace():
        with pytest.raises(RuntimeError, match="already recording"):
            with mg.graph.trace():
                pass


# ---- 8. scale -------------------------------------------------------------------------

def test_backward_through_a_chain_of_100000_ops_without_recursion():
    x = mg.tensor([1.0], dtype=mg.float64, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = -y
    assert sys.getrecursionlimit() < 100_000
    y.sum().backward()
    assert x.grad.tolist() == [1.0]
    text = mg.graph.to_dot(y)
    assert text.count("NegBackward") == 100_000
    del y  # freeing the chain must not recurse either


def test_dot_renders_a_medium_graph(tmp_path):
    if shutil.which("dot") is None:
        pytest.skip("Graphviz `dot` not installed")
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = x
    for k in range(50):
        y = y * 1.01 + x if k % 2 else y - x
    done = subprocess.run(["dot", "-Tsvg"], input=mg.graph.to_dot(y, show_saved=True).encode(),
                          capture_output=True, check=True)
    assert done.stdout.count(b"<g id=\"node") == len(parse_dot(mg.graph.to_dot(y, show_saved=True))[0])
