"""NOT gymnasium.spaces: the three constructors mis_gym calls, keeping their arguments (see ../README.md)."""
import numpy as np


class Space:
    pass


class Discrete(Space):
    def __init__(self, n, start=0, seed=None):
        self.n, self.start = int(n), int(start)

    def contains(self, x):
        return self.start <= int(x) < self.start + self.n


class MultiDiscrete(Space):
    def __init__(self, nvec, dtype=np.int64, seed=None, start=None):
        self.nvec = np.asarray(nvec, dtype=dtype)


class Box(Space):
    def __init__(self, low, high, shape=None, dtype=np.float32, seed=None):
        self.low, self.high, self.dtype = np.asarray(low, dtype=dtype), np.asarray(high, dtype=dtype), np.dtype(dtype)
        self.shape = self.low.shape

    def contains(self, x):
        x = np.asarray(x)
        return x.shape == self.shape and x.dtype == self.dtype and bool(np.all((x >= self.low) & (x <= self.high)))
