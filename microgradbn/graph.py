"""Studying the graph: draw it, tabulate it, trace a backward pass through it.

    import microgradbn as mg
    loss = model(x).sum()
    print(mg.graph.to_dot(loss, params=model))  # Graphviz DOT text, same graph -> same text
    mg.graph.draw(loss, "graph.svg")            # .svg .png .pdf, with Graphviz's `dot` program
    print(mg.graph.summary(loss))               # ops, shapes, FLOPs, saved memory
    with mg.graph.trace() as t:
        loss.backward()
    print(t)                                    # gradient norms and time, node by node

Reading a drawing. The boxes are the graph's nodes: `loss.grad_fn` and every
node it reaches through `next_functions`. Arrows go the way the data went in
the forward pass, so the gradient flows against them. Grey: op nodes, named
as in PyTorch (`MulBackward`, `BatchNormBackward`, ...) with the shape and
dtype (when not float32) they produced. Blue: leaf tensors that require grad
(their `AccumulateGrad` node). Green: the output. Orange (`show_saved=True`):
the arrays an op saved for its backward; a backward without
`retain_graph=True` frees them, and the drawing says so.

Names. A leaf is labelled with the name `params` gives it (a dict
name -> tensor, as torchviz, or a Module, whose `named_parameters()` paths
are used), else with its own `Tensor.name`. A non-leaf tensor in `params`
names the node that made it; the output box shows the output's `name`.

Numbering. `to_dot`, `summary` and `trace` number the nodes the same way:
forward order, the reverse of the order backward runs them
(`nodes_in_order`), so row 7 of a summary is node `n7` of the drawing.

Fused nodes, drawn expanded: the decomposition interface.
With `decompose_bn=True` a node that can describe itself as a graph of
primitive steps is drawn as a cluster of those steps. A node class provides
`decomposition(self)` returning a list of `Step(name, formula, args, shape)`:

    name     a short identifier of the value the step makes, unique in the list
    formula  what the step computes, shown in the drawing ("μ = mean(x)")
    args     what it reads: an int i is the node's i-th input (next_functions[i]),
             a string is the name of an earlier step or, if none has that
             name, a constant drawn by that name ("running_mean")
    shape    the shape of the value, or None

The last step makes the node's output. `BatchNormBackward` nodes
(`F.batch_norm`, inputs (x, weight, bias)) need no method of their own:
`batch_norm_steps(node)` gives the paper's steps from `node.training`,
`node.output_meta` and, when weight or bias was None, `node.has_weight` /
`node.has_bias` set False by the op (an input without a graph edge is
otherwise drawn as a constant: a weight that needs no grad). A BN node that
defines `decomposition()` overrides all this.
"""
import math
import os
import shutil
import subprocess
import time
from collections import namedtuple

import numpy as np

from . import autograd
from .autograd import AccumulateGrad

Step = namedtuple("Step", "name formula args shape", defaults=(None,))
SummaryRow = namedtuple("SummaryRow", "index node name inputs shape dtype flops saved_bytes freed")
TraceRow = namedtuple("TraceRow", "backward step index node name grad_shape grad_norm sent seconds")


# ---- walking the graph -------------------------------------------------------

def _outputs(output):
    """The output tensors, as a list (one tensor, or a list/tuple of them)."""
    from .tensor import Tensor

    outputs = list(output) if isinstance(output, (list, tuple)) else [output]
    for t in outputs:
        if not isinstance(t, Tensor):
            raise TypeError(f"expected a Tensor or a list of Tensors, got {type(t).__name__}")
        if t._grad_node() is None:
            raise ValueError("this tensor has no graph: it does not require grad. Give an input "
                             "requires_grad=True, and build it outside mg.no_grad().")
    return outputs


def nodes_in_order(roots):
    """Every node reachable from the root nodes, inputs before the nodes that
    use them (forward order: the reverse of autograd.topological_order for
    one root). Iterative, so a 100,000-op chain is fine."""
    order, seen = [], set()
    for root in roots:
        if id(root) in seen:
            continue
        seen.add(id(root))
        stack = [(root, iter(root.next_functions))]
        while stack:
            node, edges = stack[-1]
            for next_node, _ in edges:
                if next_node is not None and id(next_node) not in seen:
                    seen.add(id(next_node))
                    stack.append((next_node, iter(next_node.next_functions)))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


def _names(params):
    """id(node) -> name, from a Module, a dict name -> tensor, or (name, tensor) pairs."""
    if params is None:
        return {}
    if hasattr(params, "named_parameters"):
        pairs = params.named_parameters()
    elif hasattr(params, "items"):
        pairs = params.items()
    else:
        pairs = params
    names = {}
    for name, t in pairs:
        node = t.grad_fn if t.grad_fn is not None else t._accumulator
        if node is not None:
            names.setdefault(id(node), str(name))
    return names


def _name_of(node, names):
    name = names.get(id(node))
    if name is None and isinstance(node, AccumulateGrad):
        name = node.variable.name
    return name or ""


def _meta(node):
    """(shape, dtype) of what the node stands for: its output, or its leaf."""
    if isinstance(node, AccumulateGrad):
        return node.variable.shape, node.variable.dtype
    return getattr(node, "output_meta", (None, None))


def _input_shapes(node):
    return [None if n is None else _meta(n)[0] for n, _ in node.next_functions]


def _shape_text(shape, dtype=None):
    text = "?" if shape is None else str(tuple(int(n) for n in shape))
    return text if dtype is None or dtype == np.float32 else f"{text} {dtype}"


def _bytes_text(n):
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _saved_arrays(node):
    """The distinct arrays a node saved for backward (empty once freed)."""
    arrays, seen = [], set()
    for a in getattr(node, "saved_tensors", ()):
        if isinstance(a, np.ndarray) and id(a) not in seen:
            seen.add(id(a))
            arrays.append(a)
    return arrays


# ---- decomposition of fused nodes -------------------------------------------

def batch_norm_steps(node):
    """The paper's graph of primitives (Ioffe & Szegedy 2015, Algorithm 1) for a
    fused BatchNormBackward node with inputs (x, weight, bias): mean, subtract,
    square, mean, add eps, sqrt, divide, scale, shift. In eval mode the running
    statistics are constants and only the last five steps remain."""
    shape = node.output_meta[0]
    stat = (shape[1],)
    if getattr(node, "training", True):
        steps = [Step("mu", "μ = mean(x)", (0,), stat),
                 Step("xc", "x − μ", (0, "mu"), shape),
                 Step("sq", "(x − μ)²", ("xc",), shape),
                 Step("var", "σ² = mean((x − μ)²)", ("sq",), stat),
                 Step("var_eps", "σ² + ε", ("var",), stat),
                 Step("std", "√(σ² + ε)", ("var_eps",), stat),
                 Step("xhat", "x̂ = (x − μ) / √(σ² + ε)", ("xc", "std"), shape)]
    else:
        steps = [Step("xc", "x − running_mean", (0, "running_mean"), shape),
                 Step("var_eps", "running_var + ε", ("running_var",), stat),
                 Step("std", "√(running_var + ε)", ("var_eps",), stat),
                 Step("xhat", "x̂ = (x − running_mean) / √(running_var + ε)", ("xc", "std"), shape)]
    # An input without an edge is a weight that needs no grad (drawn as a
    # constant) or, if the node says has_weight/has_bias = False, no weight.
    inputs = node.next_functions
    if len(inputs) > 1 and getattr(node, "has_weight", True):
        weight = 1 if inputs[1][0] is not None else "γ"
        steps.append(Step("scaled", "γ · x̂", ("xhat", weight), shape))
    if len(inputs) > 2 and getattr(node, "has_bias", True):
        bias = 2 if inputs[2][0] is not None else "β"
        formula = "y = γ · x̂ + β" if steps[-1].name == "scaled" else "y = x̂ + β"
        steps.append(Step("y", formula, (steps[-1].name, bias), shape))
    return steps


def decomposition(node):
    """The node's primitive steps (see the module docstring), or None if it has none."""
    if hasattr(node, "decomposition"):
        return list(node.decomposition())
    if node.name() == "BatchNormBackward":
        return batch_norm_steps(node)
    return None


# ---- DOT ---------------------------------------------------------------------

def _q(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


_STYLE = {
    "op": 'fillcolor="lightgrey"',
    "leaf": 'fillcolor="lightblue"',
    "output": 'fillcolor="darkolivegreen1"',
    "saved": 'fillcolor="orange"',
    "step": 'fillcolor="lightyellow"',
    "const": 'fillcolor="white", shape=ellipse',
}


def to_dot(output, params=None, show_saved=False, decompose_bn=False):
    """Graphviz DOT text of the graph that made `output` (a Tensor or a list of
    Tensors). `params`: names for tensors (dict name -> tensor, or a Module).
    `show_saved`: draw each node's saved arrays. `decompose_bn`: draw fused
    nodes (BatchNorm) as clusters of their primitive steps. The same graph
    always gives the same text."""
    outputs = _outputs(output)
    nodes = nodes_in_order([t._grad_node() for t in outputs])
    names = _names(params)
    lines = ["digraph {",
             '  graph [fontname="Helvetica", fontsize=10, ranksep=0.25, nodesep=0.25];',
             '  node [shape=box, style=filled, fontname="Helvetica", fontsize=10, height=0.2];',
             '  edge [arrowsize=0.6];']
    out_id = {}  # id(node) -> DOT id of the box its consumers' arrows start from
    for i, node in enumerate(nodes):
        nid = f"n{i}"
        shape, dtype = _meta(node)
        name = _name_of(node, names)
        steps = decomposition(node) if decompose_bn and not isinstance(node, AccumulateGrad) else None
        if isinstance(node, AccumulateGrad):
            label = (name + "\n" if name else "") + _shape_text(shape, dtype)
            lines.append(f"  {nid} [label={_q(label)}, {_STYLE['leaf']}];")
            out_id[id(node)] = nid
        elif steps:
            out_id[id(node)] = _cluster(lines, nid, node, name, steps, out_id)
        else:
            label = node.name() + (f"\n{name}" if name else "") + "\n" + _shape_text(shape, dtype)
            lines.append(f"  {nid} [label={_q(label)}, {_STYLE['op']}];")
            out_id[id(node)] = nid
            for next_node, _ in node.next_functions:
                if next_node is not None:
                    lines.append(f"  {out_id[id(next_node)]} -> {nid};")
        if show_saved and not isinstance(node, AccumulateGrad):
            _saved_boxes(lines, nid, node, out_id[id(node)])
    for k, t in enumerate(outputs):
        label = (t.name or "output") + "\n" + _shape_text(t.shape, t.dtype)
        lines.append(f"  out{k} [label={_q(label)}, {_STYLE['output']}];")
        lines.append(f"  {out_id[id(t._grad_node())]} -> out{k};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _cluster(lines, nid, node, name, steps, out_id):
    """Draw a fused node as a cluster of its steps; returns the last step's DOT id."""
    title = f"{node.name()}, decomposed" + (f"\n{name}" if name else "")
    lines.append(f"  subgraph cluster_{nid} {{")
    lines.append(f'    label={_q(title)}; style="rounded,dashed"; color="grey40";')
    ids, constants, edges = {}, {}, []
    for j, step in enumerate(steps):
        sid = f"{nid}_{j}"
        label = step.formula + ("" if step.shape is None else "\n" + _shape_text(step.shape))
        lines.append(f"    {sid} [label={_q(label)}, {_STYLE['step']}];")
        for arg in step.args:
            if isinstance(arg, int):
                source = node.next_functions[arg][0]
                if source is None:
                    continue
                edges.append(f"  {out_id[id(source)]} -> {sid};")
            elif arg in ids:
                edges.append(f"  {ids[arg]} -> {sid};")
            else:
                if arg not in constants:
                    constants[arg] = f"{nid}_c{len(constants)}"
                    lines.append(f"    {constants[arg]} [label={_q(arg)}, {_STYLE['const']}];")
                edges.append(f"  {constants[arg]} -> {sid};")
        ids[step.name] = sid
    lines.append("  }")
    lines.extend(edges)
    return ids[steps[-1].name]


def _saved_boxes(lines, nid, node, target):
    if node._freed:
        lines.append(f"  {nid}_saved [label={_q('saved tensors: freed by backward')}, {_STYLE['saved']}];")
        lines.append(f"  {nid}_saved -> {target} [style=dashed, arrowhead=none];")
        return
    for j, array in enumerate(_saved_arrays(node)):
        label = f"saved\n{_shape_text(array.shape, array.dtype)}\n{_bytes_text(array.nbytes)}"
        lines.append(f"  {nid}_s{j} [label={_q(label)}, {_STYLE['saved']}];")
        lines.append(f"  {nid}_s{j} -> {target} [style=dashed, arrowhead=none];")


_INSTALL_DOT = (
    "drawing needs Graphviz's `dot` program, which was not found on PATH. Install Graphviz "
    "(Debian/Ubuntu: `apt-get install graphviz`; macOS: `brew install graphviz`; conda: "
    "`conda install graphviz`), or save the text of mg.graph.to_dot(...) to a .dot file and "
    "render it elsewhere.")

_FORMATS = ("svg", "png", "pdf", "dot")


def draw(output, path=None, params=None, show_saved=False, decompose_bn=False):
    """Draw the graph of `output` to `path` (.svg, .png, .pdf, or .dot for the
    text) with Graphviz's `dot` program, and return the path. Without a path,
    return a graphviz.Source that a Jupyter notebook shows inline (the
    `graphviz` Python package: pip install microgradbn[graph])."""
    text = to_dot(output, params=params, show_saved=show_saved, decompose_bn=decompose_bn)
    if path is None:
        try:
            import graphviz
        except ImportError:
            raise RuntimeError("draw() without a path returns a graphviz.Source, which needs the "
                               "`graphviz` Python package: pip install microgradbn[graph] (or "
                               "pip install graphviz); or give a path such as 'graph.svg'") from None
        return graphviz.Source(text)
    path = os.fspath(path)
    fmt = os.path.splitext(path)[1].lower().lstrip(".")
    if fmt not in _FORMATS:
        raise ValueError(f"draw: cannot tell the format from {path!r}; end it with one of "
                         + ", ".join("." + f for f in _FORMATS))
    if fmt == "dot":
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path
    program = shutil.which("dot")
    if program is None:
        raise RuntimeError(_INSTALL_DOT)
    done = subprocess.run([program, f"-T{fmt}", "-o", path], input=text.encode("utf-8"),
                          capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"dot failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
    return path


# ---- summary -----------------------------------------------------------------

# Forward FLOPs per element of the output ("out") or of the first input ("in").
# Estimates: a transcendental counts as one, data movement as none.
_PER_ELEMENT = {
    "add": ("out", 1), "sub": ("out", 1), "mul": ("out", 1), "div": ("out", 1), "neg": ("out", 1),
    "pow": ("out", 1), "exp": ("out", 1), "log": ("out", 1), "sqrt": ("out", 1), "rsqrt": ("out", 1),
    "abs": ("out", 1), "relu": ("out", 1), "leakyrelu": ("out", 1), "tanh": ("out", 1),
    "sigmoid": ("out", 1), "maximum": ("out", 1), "minimum": ("out", 1), "clamp": ("out", 1),
    "where": ("out", 1), "square": ("out", 1), "dropout": ("out", 1),
    "sum": ("in", 1), "mean": ("in", 1), "max": ("in", 1), "min": ("in", 1), "amax": ("in", 1),
    "amin": ("in", 1), "var": ("in", 3), "std": ("in", 3), "logsumexp": ("in", 3),
    "softmax": ("in", 3), "logsoftmax": ("in", 3), "mseloss": ("in", 3), "crossentropy": ("in", 4),
    "nllloss": ("out", 1),
    "reshape": ("out", 0), "view": ("out", 0), "transpose": ("out", 0), "permute": ("out", 0),
    "expand": ("out", 0), "squeeze": ("out", 0), "unsqueeze": ("out", 0), "flatten": ("out", 0),
    "getitem": ("out", 0), "index": ("out", 0), "slice": ("out", 0), "contiguous": ("out", 0),
    "clone": ("out", 0), "copy": ("out", 0), "cast": ("out", 0), "cat": ("out", 0), "stack": ("out", 0),
    "t": ("out", 0),
}
_MATMUL = {"matmul", "mm", "bmm", "linear", "addmm"}
_CONV = {"conv1d", "conv2d", "convolution"}


def flops(node):
    """A forward FLOPs estimate for one node (None when the op is unknown).
    Matmul 2·M·K·N; convolution 2·out·(C_in/groups·k); BatchNorm 7 per element
    in training (mean 1, variance 3, normalise-scale-shift 3), 2 in eval."""
    if isinstance(node, AccumulateGrad):
        return 0
    op = node.name().removesuffix("Backward").lower()
    out_shape = node.output_meta[0]
    ins = _input_shapes(node)
    out = math.prod(out_shape)
    if op in _PER_ELEMENT:
        which, per = _PER_ELEMENT[op]
        shape = ins[0] if which == "in" else out_shape
        return None if shape is None else per * math.prod(shape)
    if op in _MATMUL:
        a, b = (ins + [None, None])[:2]
        k = a[-1] if a else (b[-2] if b and len(b) > 1 else b[0] if b else None)
        return None if k is None else 2 * out * k
    if op in _CONV:
        w = ins[1] if len(ins) > 1 else None
        return None if w is None else 2 * out * math.prod(w[1:])
    if op == "batchnorm":
        return (7 if getattr(node, "training", True) else 2) * out
    return None


class Summary:
    """The nodes of a graph in forward order, with op, output shape, FLOPs
    estimate and saved-tensor memory; `rows` holds SummaryRow tuples, str()
    gives the table with totals."""

    def __init__(self, output, params=None):
        outputs = _outputs(output)
        nodes = nodes_in_order([t._grad_node() for t in outputs])
        names = _names(params)
        index = {id(n): i for i, n in enumerate(nodes)}
        self.rows, saved = [], {}
        for i, node in enumerate(nodes):
            shape, dtype = _meta(node)
            arrays = _saved_arrays(node)
            saved.update((id(a), a.nbytes) for a in arrays)
            self.rows.append(SummaryRow(
                index=i, node=node.name(), name=_name_of(node, names),
                inputs=tuple(None if n is None else index[id(n)] for n, _ in node.next_functions),
                shape=shape, dtype=dtype, flops=flops(node),
                saved_bytes=sum(a.nbytes for a in arrays), freed=node._freed))
        self.total_saved_bytes = sum(saved.values())  # an array saved twice counts once

    @property
    def total_flops(self):
        return sum(r.flops for r in self.rows if r.flops is not None)

    def __str__(self):
        table = [("#", "node", "name", "inputs", "output", "FLOPs", "saved")]
        for r in self.rows:
            inputs = ", ".join("-" if i is None else str(i) for i in r.inputs)
            flops_text = "?" if r.flops is None else f"{r.flops:,}" if r.node != "AccumulateGrad" else ""
            saved = "freed" if r.freed else (_bytes_text(r.saved_bytes) if r.saved_bytes else "")
            table.append((str(r.index), r.node, r.name, inputs, _shape_text(r.shape, r.dtype),
                          flops_text, saved))
        leaves = [r for r in self.rows if r.node == "AccumulateGrad"]
        unknown = sum(r.flops is None for r in self.rows)
        total = (f"{len(self.rows)} nodes ({len(leaves)} leaves, "
                 f"{sum(math.prod(r.shape) for r in leaves):,} leaf elements), "
                 f"forward FLOPs {self.total_flops:,}"
                 + (f" (+ {unknown} ops of unknown cost)" if unknown else "")
                 + f", saved for backward {_bytes_text(self.total_saved_bytes)}")
        return _format_table(table, right=(0, 5, 6)) + "\n" + total

    __repr__ = __str__


def summary(output, params=None):
    """Summary of the graph that made `output`: print it, or read `.rows`."""
    return Summary(output, params)


def _format_table(table, right=()):
    widths = [max(len(row[c]) for row in table) for c in range(len(table[0]))]
    lines = []
    for k, row in enumerate(table):
        cells = [cell.rjust(w) if c in right else cell.ljust(w)
                 for c, (cell, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---- trace -------------------------------------------------------------------

def _norm(array):
    return float(np.linalg.norm(np.asarray(array, dtype=np.float64)))


class trace:
    """Record the backward passes run inside `with mg.graph.trace() as t:`.

    For each node the engine runs: the gradient it received (shape, L2 norm),
    the norms of the gradients it sent to each input, and the time its backward
    took; and for each leaf the gradient that reached it. `t.rows` holds
    TraceRow tuples, `t.leaves` (backward, index, name, shape, norm) tuples;
    print(t) shows the tables. Nodes are numbered as summary(output) and
    to_dot(output) number them. One trace at a time (the engine has one slot)."""

    def __init__(self, params=None):
        self.params = params
        self.rows, self.leaves = [], []
        self._passes = self._step = 0
        self._names, self._index, self._leaf_grads = {}, {}, {}

    def __enter__(self):
        if autograd._trace is not None:
            raise RuntimeError("a mg.graph.trace() is already recording")
        autograd._trace = self
        return self

    def __exit__(self, *exc):
        autograd._trace = None
        self._finish_pass()
        return False

    def begin(self, order):
        """Called by the engine with the nodes of a backward, root first."""
        self._finish_pass()
        self._passes += 1
        self._step = 0
        self._names = _names(self.params)
        self._index = {id(n): len(order) - 1 - k for k, n in enumerate(order)}
        self._leaf_grads = {}  # id(AccumulateGrad) -> (node, summed gradient)

    def run(self, node, grad):
        """Called by the engine in place of node._run_backward(grad)."""
        start = time.perf_counter()
        grads = node._run_backward(grad)
        seconds = time.perf_counter() - start
        self._step += 1
        sent = []
        for (next_node, _), g in zip(node.next_functions, grads):
            if next_node is None or g is None:
                continue
            sent.append((self._label(next_node), _norm(g)))
            if isinstance(next_node, AccumulateGrad):
                _, total = self._leaf_grads.get(id(next_node), (None, 0))
                self._leaf_grads[id(next_node)] = (next_node, total + g)
        self.rows.append(TraceRow(
            backward=self._passes, step=self._step,
            index=self._index[id(node)], node=node.name(), name=_name_of(node, self._names),
            grad_shape=tuple(np.shape(grad)), grad_norm=_norm(grad), sent=tuple(sent),
            seconds=seconds))
        return grads

    def _label(self, node):
        name = _name_of(node, self._names)
        return f"#{self._index[id(node)]}" + (f" {name}" if name else "")

    def _finish_pass(self):
        for node, total in sorted(self._leaf_grads.values(), key=lambda v: self._index[id(v[0])]):
            self.leaves.append((self._passes, self._index[id(node)], _name_of(node, self._names),
                                node.variable.shape, _norm(total)))
        self._leaf_grads, self._index = {}, {}

    @property
    def total_seconds(self):
        return sum(r.seconds for r in self.rows)

    def __str__(self):
        total = self.total_seconds or 1.0
        table = [("pass", "step", "node", "grad in", "|grad in|", "grads out |g| -> input", "µs", "%")]
        for r in self.rows:
            sent = ", ".join(f"{norm:.4g} -> {label}" for label, norm in r.sent)
            node = f"#{r.index} {r.node}" + (f" {r.name}" if r.name else "")
            table.append((str(r.backward), str(r.step), node,
                          _shape_text(r.grad_shape), f"{r.grad_norm:.4g}", sent,
                          f"{r.seconds * 1e6:.1f}", f"{100 * r.seconds / total:.1f}"))
        leaves = [("pass", "leaf", "shape", "|grad|")]
        leaves += [(str(p), f"#{i}" + (f" {name}" if name else ""), _shape_text(shape), f"{norm:.4g}")
                   for p, i, name, shape, norm in self.leaves]
        return (_format_table(table, right=(0, 1, 4, 6, 7))
                + f"\ntime in node backward functions: {self.total_seconds * 1e6:.1f} µs\n\n"
                + "gradient reaching each leaf:\n" + _format_table(leaves, right=(0, 3)))

    __repr__ = __str__
