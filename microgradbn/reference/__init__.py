"""Reference implementations in plain NumPy float64: slow, literal, obviously right.
They are the oracles the tests hold the C kernels and the autograd ops against."""
