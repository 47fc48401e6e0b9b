"""NOT gymnasium: a stand-in for its import path, for test_mis_gym only (see ../README.md).

It has the names mis_gym uses, with gymnasium 1.x's signatures: Env, register, registry, make, and
spaces.Discrete / MultiDiscrete / Box.
"""
from . import spaces

__version__ = "0.0-standin"
registry = {}


class EnvSpec:
    """What register records (gymnasium.envs.registration.EnvSpec, reduced to its id, entry point and kwargs)."""

    def __init__(self, id, entry_point, kwargs):
        self.id = id
        self.entry_point = entry_point
        self.kwargs = dict(kwargs or {})


class Env:
    """gymnasium.Env reduced to what a subclass relies on: reset(seed=...) seeding, spec, unwrapped."""

    metadata = {"render_modes": []}
    render_mode = None
    spec = None
    np_random_seed = None

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.np_random_seed = seed

    def close(self):
        pass

    @property
    def unwrapped(self):
        return self


def register(id, entry_point=None, kwargs=None, **_ignored):
    registry[id] = EnvSpec(id, entry_point, kwargs)


def make(id, **kwargs):
    """As gymnasium.make without its wrappers: the entry point called with the spec's kwargs updated by these."""
    spec = registry[id]
    merged = dict(spec.kwargs)
    merged.update(kwargs)
    env = spec.entry_point(**merged)
    env.unwrapped.spec = spec
    return env
