"""Experiments that reproduce figures of the Batch Normalization paper (Ioffe & Szegedy 2015)."""
