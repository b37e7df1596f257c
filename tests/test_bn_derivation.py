"""tools/derive_bn_backward.py: the sympy derivation of the BN backward reproduces the
kernel's closed form for several n, and reports (exit status 1) an identity that fails."""
import importlib.util
import pathlib
import subprocess
import sys

import pytest

sp = pytest.importorskip("sympy")

SCRIPT = pathlib.Path(__file__).resolve().parent.parent / "tools" / "derive_bn_backward.py"


def load_script():
    spec = importlib.util.spec_from_file_location("derive_bn_backward", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_derivation_holds_for_n_2_to_4():
    run = subprocess.run([sys.executable, str(SCRIPT), "-n", "2", "3", "4"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    for n in (2, 3, 4):
        assert f"==== batch of n = {n} values" in out
    for step in ("Step 1. The paper's chain-rule lines", "dl/dxhat_1 = dy1*gamma", "dl/dsigma2 = ",
                 "dl/dmu = ", "dl/dx_1 = ", "dl/dgamma = ", "dl/dbeta = dy1 + dy2",
                 "Step 2. The second term of dl/dmu vanishes", "with mu = x1/2 + x2/2 it is = 0",
                 "Step 3. Simplify", "the kernel's closed form", "closed form dx_1 = ",
                 "dx_i = gamma rstd / n * (n dy_i - dl/dbeta - xhat_i dl/dgamma)",
                 "Step 4. Independent check: differentiate l(x)", "symbolically", "exact rational point",
                 "==== eval mode", "d l/d x_i = dy_i * gamma / sqrt(running_var + eps)",
                 "All identities hold for n = 2, 3, 4 and in eval mode"):
        assert step in out, step
    assert "FAILED" not in out
    assert out.count("[OK]") == 3 * 16 + 4  # 16 checks per n, 4 in eval mode


def test_a_wrong_closed_form_is_reported(monkeypatch, capsys):
    script = load_script()

    def without_xhat_term(x, dy):  # the closed form with the xhat * sum(g xhat) term forgotten
        n, g = len(x), [d * script.GAMMA for d in dy]
        return [script.RSTD / n * (n * gi - sum(g)) for gi in g]

    monkeypatch.setattr(script, "closed_form", without_xhat_term)
    assert script.main(["-n", "2", "--points", "1"]) == 1
    out = capsys.readouterr().out
    assert "[FAILED] dl/dx_i = (1/n) rstd (n g_i - sum g - xhat_i sum(g xhat)), the kernel's closed form" in out
    assert "exact rational point 1: direct = paper = closed form" in out.split("FAILED:")[1]
    assert "[FAILED] d l/d x_i (direct)" not in out  # the paper's lines themselves still hold


def test_a_wrong_paper_line_is_caught_by_direct_differentiation(monkeypatch, capsys):
    script = load_script()
    monkeypatch.setattr(script, "HALF", sp.Rational(1, 3))  # dl/dsigma2 with -1/3 instead of -1/2
    assert script.main(["-n", "3", "--points", "1"]) == 1
    out = capsys.readouterr().out
    assert "[FAILED] dl/dsigma2 = partial l / partial sigma2" in out
    assert "[FAILED] d l/d x_i (direct) = the paper's dl/dx_i, symbolically" in out


def test_n_must_be_at_least_2():
    run = subprocess.run([sys.executable, str(SCRIPT), "-n", "1"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "each n must be in 2..8" in run.stderr
