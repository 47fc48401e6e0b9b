#!/usr/bin/python3
"""With the gymnasium stand-in first on sys.path: mis_gym's gymnasium path works (test_mis_gym runs
this in a child process, so its own process keeps the dependency-free path).

usage: check_registration.py TARGET   (prints "registration ok" and exits 0 when every check holds)
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)                     # the stand-in's gymnasium/
sys.path.insert(1, os.path.dirname(HERE))    # mis_gym

import gymnasium  # noqa: E402
import numpy as np  # noqa: E402

import mis_gym  # noqa: E402


def main(target):
    assert gymnasium.__version__ == "0.0-standin", "not the stand-in: %r" % gymnasium.__file__
    assert issubclass(mis_gym.MisEnv, gymnasium.Env), mis_gym.MisEnv.__mro__
    ids = sorted(i for i in gymnasium.registry if i.startswith("mis/"))
    assert ids == sorted("mis/%s-v0" % name for name in mis_gym.SHIPPED_SCENARIOS), ids
    assert mis_gym.register_envs(["sub/inner"]) == ["mis/sub.inner-v0"]

    env = gymnasium.make("mis/data-shortcut-v0", target=target, record_episode_statistics=True)
    try:
        assert isinstance(env, mis_gym.MisEnv) and env.scenario == "data-shortcut", env
        assert env.spec.id == "mis/data-shortcut-v0", env.spec
        assert isinstance(env.observation_space, gymnasium.spaces.Box), env.observation_space
        assert isinstance(env.action_space, gymnasium.spaces.Discrete) and env.action_space.n == 8, env.action_space
        obs, info = env.reset(seed=3)
        assert env.np_random_seed == 3  # gymnasium.Env.reset was called with the seed
        assert isinstance(obs, np.ndarray) and obs.dtype == np.float32 and env.observation_space.contains(obs), obs
        obs, reward, terminated, truncated, info = env.step(np.int64(7))  # submit: a numpy integer action
        assert env.observation_space.contains(obs) and terminated and info["action"] == "submit", (obs, terminated, info)
        assert info["episode"]["l"] == 1, info
    finally:
        env.close()
    print("registration ok: %s" % ", ".join(ids))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
