"""MIS environments from Python, over gRPC: a client of mis.gym.v1.GymService (`mis gym serve`)
shaped like a Gymnasium env, needing neither gymnasium nor numpy (using them when they import).

    import mis_gym
    with mis_gym.MisEnv("data-shortcut", target="127.0.0.1:50052") as env:
        obs, info = env.reset(seed=42)
        terminated = truncated = False
        while not (terminated or truncated):
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())

The Gymnasium contract holds as the server keeps it (proto/mis/gym/v1/gym.proto):
  * reset(seed=None, options=None) -> (obs, info); only a seeded reset re-seeds the environment.
  * step(action) -> (obs, reward, terminated, truncated, info). terminated: the MDP reached a
    terminal state (task submitted, workload killed at DEFCON 1); do not bootstrap from obs.
    truncated: a step or time budget stopped it; obs still has value.
  * No autoreset: after terminated or truncated, call reset() before the next step().
Observations are lists of floats (wrap them in numpy.asarray if you use numpy); info is a dict with
the keys the environment set (reward_terms, defcon, violations, result, action, episode, ...).
Errors raise MisGymError carrying the gRPC status code and the server's reason.

MisVectorEnv(scenario, num_envs) steps N environments per call (VectorStep), with Gymnasium's
default next-step autoreset; it returns numpy arrays when numpy imports (lists otherwise, or with
numpy=False):

    with mis_gym.MisVectorEnv("data-shortcut", 64) as envs:
        obs, info = envs.reset(seed=0)                 # obs: float32 (64, obs_size)
        obs, rewards, terminated, truncated, info = envs.step(envs.action_space.sample())

With gymnasium importable, MisEnv subclasses gymnasium.Env (its spaces are then gymnasium.spaces and
its observations float32 numpy arrays), and importing this module registers "mis/NAME-v0" for each
scenario MIS ships, so gymnasium.make("mis/data-shortcut-v0", target=...) makes a MisEnv.

Stubs: generated from proto/ on first use with `python3 -m grpc_tools.protoc` (Debian's
python3-grpc-tools) into a temporary directory removed at exit. The proto directory is
$MIS_PROTO_DIR, else ../../proto next to this file (the repository layout).
"""
import array
import atexit
import math
import operator
import os
import random
import shutil
import subprocess
import sys
import tempfile

import grpc

try:  # optional: MisEnv is a gymnasium.Env, and the MIS ids are registered, when it imports
    import gymnasium as _gymnasium
except ImportError:
    _gymnasium = None
try:  # optional: MisVectorEnv returns arrays when it imports (gymnasium needs it anyway)
    import numpy as _np
except ImportError:
    _np = None

__all__ = ["MisEnv", "MisVectorEnv", "MisGymError", "Discrete", "MultiDiscrete", "Box", "make", "list_scenarios",
           "register_envs", "SHIPPED_SCENARIOS", "DEFAULT_TARGET"]

DEFAULT_TARGET = "127.0.0.1:50052"
# The scenarios of the repository's experiments/scenarios (what `mis gym serve` offers by default),
# registered with gymnasium as "mis/NAME-v0". test_mis_gym compares this with the server's list.
SHIPPED_SCENARIOS = ("agent-command", "data-shortcut", "data-shortcut-strict", "example-policy", "exfil-bonus", "interpreter-shortcut",
                     "privileged-tool")
_GYM_PROTO = "mis/gym/v1/gym.proto"
_stubs = None


def _load_stubs():
    """The generated modules (gym_pb2, gym_pb2_grpc), generated once per process."""
    global _stubs
    if _stubs is not None:
        return _stubs
    proto_dir = os.environ.get("MIS_PROTO_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto")
    if not os.path.isfile(os.path.join(proto_dir, _GYM_PROTO)):
        raise MisGymError(None, "cannot find %s under %s: set MIS_PROTO_DIR to the repository's proto/ directory" % (_GYM_PROTO, proto_dir))
    out = tempfile.mkdtemp(prefix="mis-gym-stubs-")
    atexit.register(shutil.rmtree, out, True)
    # grpc_tools.protoc run as a module adds the include path of google/protobuf/*.proto itself.
    result = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", proto_dir,
                             "--python_out", out, "--grpc_python_out", out, _GYM_PROTO],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    if result.returncode != 0:
        raise MisGymError(None, "generating the gRPC stubs failed (is python3-grpc-tools installed?):\n" + result.stdout)
    sys.path.insert(0, out)
    from mis.gym.v1 import gym_pb2, gym_pb2_grpc
    _stubs = (gym_pb2, gym_pb2_grpc)
    return _stubs


class MisGymError(Exception):
    """A call the server refused or that failed: `code` is the grpc.StatusCode (None for a local
    problem), `details` the server's reason (for a scenario file: file:line:column and key)."""

    def __init__(self, code, details):
        self.code = code
        self.details = details
        super().__init__(details if code is None else "%s: %s" % (code.name, details))


def _call(method, request, timeout=None):
    try:
        return method(request, timeout=timeout)
    except grpc.RpcError as e:
        raise MisGymError(e.code(), e.details()) from None


# --- Spaces: the parts of gymnasium.spaces an agent uses (shape, bounds, sample, contains). ---

class _Space:
    def __init__(self, seed=None):
        self._rng = random.Random(seed)

    def seed(self, seed=None):
        """Re-seeds sample() (Python's random.Random); returns [seed]."""
        self._rng = random.Random(seed)
        return [seed]

    def __contains__(self, x):
        return self.contains(x)


def _is_int(x):
    if isinstance(x, bool):
        return False
    try:
        operator.index(x)  # int and numpy integers; not floats
        return True
    except TypeError:
        return False


class Discrete(_Space):
    """The integers start .. start + n - 1 (gymnasium.spaces.Discrete)."""

    dtype = "int64"
    shape = ()

    def __init__(self, n, start=0, seed=None):
        super().__init__(seed)
        if n < 1:
            raise ValueError("Discrete needs n >= 1, got %d" % n)
        self.n = int(n)
        self.start = int(start)

    def sample(self, mask=None):
        """A uniformly chosen element; with a mask (n flags), one of those marked 1 (start when none is)."""
        if mask is None:
            return self.start + self._rng.randrange(self.n)
        if len(mask) != self.n:
            raise ValueError("mask has %d elements, expected %d" % (len(mask), self.n))
        valid = [i for i, ok in enumerate(mask) if ok]
        return self.start + self._rng.choice(valid) if valid else self.start

    def contains(self, x):
        return _is_int(x) and self.start <= operator.index(x) < self.start + self.n

    def __eq__(self, other):
        return isinstance(other, Discrete) and (self.n, self.start) == (other.n, other.start)

    def __repr__(self):
        return "Discrete(%d)" % self.n if self.start == 0 else "Discrete(%d, start=%d)" % (self.n, self.start)


class MultiDiscrete(_Space):
    """Vectors with element i in 0 .. nvec[i] - 1 (gymnasium.spaces.MultiDiscrete)."""

    dtype = "int64"

    def __init__(self, nvec, seed=None):
        super().__init__(seed)
        self.nvec = tuple(int(n) for n in nvec)
        if not self.nvec or min(self.nvec) < 1:
            raise ValueError("MultiDiscrete needs at least one dimension, each with at least 1 choice: %r" % (self.nvec,))
        self.shape = (len(self.nvec),)

    def sample(self):
        return [self._rng.randrange(n) for n in self.nvec]

    def contains(self, x):
        try:
            values = list(x)
        except TypeError:
            return False
        return len(values) == len(self.nvec) and all(_is_int(v) and 0 <= operator.index(v) < n for v, n in zip(values, self.nvec))

    def __eq__(self, other):
        return isinstance(other, MultiDiscrete) and self.nvec == other.nvec

    def __repr__(self):
        return "MultiDiscrete(%r)" % (list(self.nvec),)


class Box(_Space):
    """Float vectors with low[i] <= x[i] <= high[i] (gymnasium.spaces.Box); low, high and elements
    are flat lists in row-major order of `shape`. Bounds may be infinite."""

    def __init__(self, low, high, shape=None, dtype="float32", seed=None):
        super().__init__(seed)
        self.low = [float(v) for v in low]
        self.high = [float(v) for v in high]
        self.shape = tuple(int(d) for d in shape) if shape is not None else (len(self.low),)
        self.dtype = dtype
        if len(self.low) != len(self.high) or len(self.low) != math.prod(self.shape):
            raise ValueError("Box shape %r needs %d bounds, got %d low and %d high"
                             % (self.shape, math.prod(self.shape), len(self.low), len(self.high)))

    def sample(self):
        """As gymnasium's Box.sample: uniform when bounded, normal when unbounded, shifted
        exponential when bounded on one side."""
        values = []
        for lo, hi in zip(self.low, self.high):
            below, above = not math.isinf(lo), not math.isinf(hi)
            if below and above:
                x = self._rng.uniform(lo, hi)
            elif not below and not above:
                x = self._rng.gauss(0.0, 1.0)
            elif below:
                x = lo + self._rng.expovariate(1.0)
            else:
                x = hi - self._rng.expovariate(1.0)
            values.append(min(max(x, lo), hi))
        return values

    def contains(self, x):
        try:
            values = list(x)
        except TypeError:
            return False
        if len(values) != len(self.low):
            return False
        for v, lo, hi in zip(values, self.low, self.high):
            if isinstance(v, bool) or not isinstance(v, (int, float)) and not hasattr(v, "__float__"):
                return False
            if not lo <= float(v) <= hi:  # False for NaN too
                return False
        return True

    def __eq__(self, other):
        return isinstance(other, Box) and (self.low, self.high, self.shape) == (other.low, other.high, other.shape)

    def __repr__(self):
        return "Box(shape=%r, dtype=%s)" % (self.shape, self.dtype)


def _space(message):
    kind = message.WhichOneof("kind")
    if kind == "discrete":
        return Discrete(message.discrete.n, message.discrete.start)
    if kind == "multi_discrete":
        return MultiDiscrete(message.multi_discrete.nvec)
    if kind == "box":
        return Box(message.box.low, message.box.high, message.box.shape, message.box.dtype or "float32")
    raise MisGymError(None, "the server sent a space of unknown kind %r (a newer mis.gym.v1?)" % kind)


_RESULTS = {1: "ok", 2: "denied", 3: "error", 4: "killed"}
_OPTIONAL = ("scenario", "backend", "defcon", "violations", "action", "reason", "slowdown_ns", "time_ns")


def _info(message):
    """The info message as Gymnasium's dict: only the keys the environment set."""
    from google.protobuf import json_format
    info = {}
    for name in _OPTIONAL:
        if message.HasField(name):  # a wrapper message: present exactly when the env set the key
            info[name] = getattr(message, name).value
    if message.action_names:
        info["action_names"] = list(message.action_names)
    if message.observation_names:
        info["observation_names"] = list(message.observation_names)
    if message.result in _RESULTS:
        info["result"] = _RESULTS[message.result]
    if message.HasField("reward_terms"):
        t = message.reward_terms
        info["reward_terms"] = {"task": t.task, "slowdown": t.slowdown, "denial": t.denial, "kill": t.kill, "anomaly": t.anomaly}
    if message.HasField("episode"):
        info["episode"] = {"r": message.episode.r, "l": message.episode.l, "t": message.episode.t}
    if message.HasField("extra"):
        info.update(json_format.MessageToDict(message.extra))
    return info


def _gymnasium_space(message):
    """The space as gymnasium.spaces has it (when gymnasium is importable; it brings numpy)."""
    spaces = _gymnasium.spaces
    kind = message.WhichOneof("kind")
    if kind == "discrete":
        return spaces.Discrete(message.discrete.n, start=message.discrete.start)
    if kind == "multi_discrete":
        return spaces.MultiDiscrete(_np.array(message.multi_discrete.nvec, dtype=_np.int64))
    if kind == "box":
        shape = tuple(message.box.shape)
        return spaces.Box(low=_np.array(message.box.low, dtype=_np.float32).reshape(shape),
                          high=_np.array(message.box.high, dtype=_np.float32).reshape(shape), dtype=_np.float32)
    raise MisGymError(None, "the server sent a space of unknown kind %r (a newer mis.gym.v1?)" % kind)


# gymnasium.Env when gymnasium imports, so gymnasium.make, its wrappers and its checker take a MisEnv.
_EnvBase = _gymnasium.Env if _gymnasium is not None else object


class MisEnv(_EnvBase):
    """A MIS environment on a `mis gym serve` server, with gymnasium.Env's interface (a subclass of
    gymnasium.Env when gymnasium is importable: spaces are then gymnasium.spaces, observations
    float32 numpy arrays).

    scenario: a scenario name under the server's scenarios directory ("data-shortcut").
    target: "HOST:PORT" or "unix:PATH" (default 127.0.0.1:50052), or pass an open grpc `channel`.
    backend: "sim" (in-process simulator) or "kernel" (real enforcement, if the server allows it).
    record_episode_statistics: info["episode"] = {"r", "l", "t"} on the step that ends an episode.
    timeout: seconds per call (None: no limit).
    """

    metadata = {"render_modes": []}
    render_mode = None
    spec = None

    def __init__(self, scenario, target=DEFAULT_TARGET, backend="sim", record_episode_statistics=False, channel=None, timeout=None):
        self._pb, rpc = _load_stubs()
        self._own_channel = channel is None
        self._channel = channel if channel is not None else grpc.insecure_channel(target)
        self._stub = rpc.GymServiceStub(self._channel)
        self._timeout = timeout
        self._closed = True
        try:
            made = _call(self._stub.Make, self._pb.MakeRequest(
                scenario=scenario, backend=backend, record_episode_statistics=record_episode_statistics), timeout)
        except BaseException:
            if self._own_channel:
                self._channel.close()
            raise
        self._closed = False
        self.env_id = made.env_id
        self.scenario = made.scenario
        self.backend = made.backend
        space = _gymnasium_space if _gymnasium is not None else _space
        self.observation_space = space(made.observation_space)
        self.action_space = space(made.action_space)

    @property
    def unwrapped(self):
        return self

    def reset(self, *, seed=None, options=None):
        """Starts an episode: (observation, info). A seed re-seeds the environment (an int32)."""
        if _gymnasium is not None:
            super().reset(seed=seed)  # seeds gymnasium.Env.np_random, as gymnasium asks of every env
        request = self._pb.ResetRequest(env_id=self._id())
        if seed is not None:
            request.seed.value = operator.index(seed)
        if options:
            request.options.update(options)
        response = _call(self._stub.Reset, request, self._timeout)
        return self._observation(response.observation), _info(response.info)

    def step(self, action):
        """One action: (observation, reward, terminated, truncated, info)."""
        request = self._pb.StepRequest(env_id=self._id(), action=self._action(action))
        r = _call(self._stub.Step, request, self._timeout)
        return self._observation(r.observation), r.reward, r.terminated, r.truncated, _info(r.info)

    def close(self):
        """Closes the environment on the server (and the channel, when this object opened it). Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            _call(self._stub.Close, self._pb.CloseRequest(env_id=self.env_id), self._timeout)
        except MisGymError as e:
            if e.code != grpc.StatusCode.NOT_FOUND:  # already gone is what close wants
                raise
        finally:
            if self._own_channel:
                self._channel.close()

    def render(self):
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return "<MisEnv %s scenario=%s backend=%s%s>" % (getattr(self, "env_id", "?"), getattr(self, "scenario", "?"),
                                                          getattr(self, "backend", "?"), " closed" if self._closed else "")

    def _id(self):
        if self._closed:
            raise MisGymError(None, "this environment is closed")
        return self.env_id

    @staticmethod
    def _observation(values):
        return _np.array(values, dtype=_np.float32) if _gymnasium is not None else list(values)

    def _action(self, action):
        space = self.action_space
        if isinstance(space, Discrete) or _gymnasium is not None and isinstance(space, _gymnasium.spaces.Discrete):
            if not _is_int(action):
                raise MisGymError(grpc.StatusCode.INVALID_ARGUMENT, "action %r is not an integer (the action space is %r)" % (action, space))
            return self._pb.Action(discrete=operator.index(action))
        if isinstance(space, MultiDiscrete) or _gymnasium is not None and isinstance(space, _gymnasium.spaces.MultiDiscrete):
            return self._pb.Action(multi_discrete=self._pb.Int64Vector(values=[operator.index(v) for v in action]))
        return self._pb.Action(box=self._pb.FloatVector(values=[float(v) for v in action]))


# --- Vectors: N environments per call. ---

class MisVectorEnv:
    """N environments of one scenario on a `mis gym serve` server (sim backend), stepped by one
    call (VectorStep), shaped like gymnasium.vector.VectorEnv with its default autoreset
    (metadata["autoreset_mode"] == "next_step"):

      * reset(seed=None) -> (obs, info) resets every sub-environment; seed=s resets sub-environment
        i with s + i (Gymnasium's int seed). Call it before the first step.
      * step(actions) -> (obs, rewards, terminated, truncated, info), one entry per sub-environment.
        The step on which sub-environment i's episode ends returns that episode's last observation,
        reward and flags; the next step() resets i instead of stepping it (its action is ignored, but
        must still be in the space) and returns the reset observation, reward 0 and both flags False.

    Arrays: numpy when numpy imports (observations float32 of shape (N, obs_size), rewards float64,
    terminated and truncated bool, each of shape (N,)); otherwise lists (observations a list of N
    lists). numpy=False asks for lists; numpy=True requires numpy.
    info follows Gymnasium's vector layout, info[key][i] with a mask info["_" + key]:
      * record_episode_statistics=True: info["episode"] = {"r", "l", "t"} and info["_episode"] mark
        the sub-environments whose episode ended on this step (only when one did).
      * infos=True: every key of each sub-environment's info too (action, result, reward_terms, ...).
        It costs a message per sub-environment and slows stepping several-fold; off by default.
    Spaces: single_observation_space and single_action_space are one sub-environment's, as mis_gym's
    own classes even when gymnasium imports (this class is not a gymnasium.vector.VectorEnv);
    observation_space (Box of shape (N, obs_size)) and action_space (MultiDiscrete of N) are batched.
    """

    metadata = {"autoreset_mode": "next_step", "render_modes": []}
    render_mode = None

    def __init__(self, scenario, num_envs, target=DEFAULT_TARGET, backend="sim", record_episode_statistics=False,
                 infos=False, numpy=None, channel=None, timeout=None):
        if numpy and _np is None:
            raise MisGymError(None, "numpy=True, but numpy does not import (apt-get install python3-numpy)")
        self._numpy = _np is not None if numpy is None else bool(numpy)
        self._pb, rpc = _load_stubs()
        self._own_channel = channel is None
        self._channel = channel if channel is not None else grpc.insecure_channel(target)
        self._stub = rpc.GymServiceStub(self._channel)
        self._timeout = timeout
        self._infos = bool(infos)
        self._closed = True
        try:
            # VectorReset without an id makes the vector (and resets it, unseeded; reset() again to seed).
            made = _call(self._stub.VectorReset, self._pb.VectorResetRequest(
                scenario=scenario, backend=backend, num_envs=operator.index(num_envs),
                record_episode_statistics=record_episode_statistics), timeout)
        except BaseException:
            if self._own_channel:
                self._channel.close()
            raise
        self._closed = False
        self._needs_reset = True
        self.vector_id = made.vector_id
        self.scenario = made.scenario
        self.backend = made.backend
        self.num_envs = made.num_envs
        self.single_observation_space = _space(made.observation_space)
        self.single_action_space = _space(made.action_space)
        self._obs_size = math.prod(self.single_observation_space.shape)
        single = self.single_observation_space
        self.observation_space = Box(single.low * self.num_envs, single.high * self.num_envs, (self.num_envs,) + single.shape)
        actions = self.single_action_space
        if not isinstance(actions, Discrete) or actions.start != 0:
            raise MisGymError(None, "MisVectorEnv steps Discrete(n) action spaces; the server sent %r" % (actions,))
        self.action_space = MultiDiscrete([actions.n] * self.num_envs)

    @property
    def unwrapped(self):
        return self

    def reset(self, *, seed=None, options=None):
        """Resets every sub-environment: (observations, info). seed: one int; sub-environment i gets seed + i."""
        if options:
            raise MisGymError(None, "MisVectorEnv.reset takes no options (MIS environments have none), got %r" % (options,))
        request = self._pb.VectorResetRequest(vector_id=self._id(), infos=self._infos)
        if seed is not None:
            if not _is_int(seed):
                raise MisGymError(None, "seed must be one int (sub-environment i is reset with seed + i), got %r" % (seed,))
            request.seed.value = operator.index(seed)
        r = _call(self._stub.VectorReset, request, self._timeout)
        self._needs_reset = False
        return self._observations(r.observations), self._batched_infos(r.infos, ())

    def step(self, actions):
        """One action per sub-environment (a sequence or numpy array of N ints):
        (observations, rewards, terminated, truncated, info)."""
        if self._needs_reset:
            raise MisGymError(None, "call reset() before the first step()")
        if self._numpy and isinstance(actions, _np.ndarray):
            actions = actions.tolist()
        try:
            request = self._pb.VectorStepRequest(vector_id=self._id(), actions=actions, infos=self._infos)
        except (TypeError, ValueError) as e:
            raise MisGymError(grpc.StatusCode.INVALID_ARGUMENT, "actions must be %d integers: %s" % (self.num_envs, e)) from None
        r = _call(self._stub.VectorStep, request, self._timeout)
        if self._numpy:
            n = self.num_envs
            rewards = _np.fromiter(r.rewards, dtype=_np.float64, count=n)
            terminated = _np.fromiter(r.terminated, dtype=bool, count=n)
            truncated = _np.fromiter(r.truncated, dtype=bool, count=n)
        else:
            rewards, terminated, truncated = list(r.rewards), list(r.terminated), list(r.truncated)
        return self._observations(r.observations), rewards, terminated, truncated, self._batched_infos(r.infos, r.episodes)

    def close(self):
        """Closes the vector on the server (and the channel, when this object opened it). Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            _call(self._stub.Close, self._pb.CloseRequest(env_id=self.vector_id), self._timeout)
        except MisGymError as e:
            if e.code != grpc.StatusCode.NOT_FOUND:
                raise
        finally:
            if self._own_channel:
                self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return "<MisVectorEnv %s scenario=%s num_envs=%s%s>" % (getattr(self, "vector_id", "?"), getattr(self, "scenario", "?"),
                                                              getattr(self, "num_envs", "?"), " closed" if self._closed else "")

    def _id(self):
        if self._closed:
            raise MisGymError(None, "this vector is closed")
        return self.vector_id

    def _observations(self, data):
        """The packed observations (float32, little-endian, row-major) as (N, obs_size)."""
        n, size = self.num_envs, self._obs_size
        if len(data) != 4 * n * size:
            raise MisGymError(None, "the server sent %d bytes of observations, expected %d x %d float32" % (len(data), n, size))
        if self._numpy:
            return _np.frombuffer(data, dtype="<f4").reshape(n, size).astype(_np.float32)  # a writable copy
        flat = array.array("f", data)
        if sys.byteorder != "little":
            flat.byteswap()
        flat = flat.tolist()
        return [flat[i * size:(i + 1) * size] for i in range(n)]

    def _batched_infos(self, infos, episodes):
        n, batched = self.num_envs, {}
        for i, message in enumerate(infos):
            info = _info(message)
            info.pop("episode", None)  # from `episodes` below, so it has one layout with infos or without
            _batch_into(batched, info, i, n, self._numpy)
        if episodes:
            # As Gymnasium's RecordEpisodeStatistics for vectors: zeros where no episode ended.
            if self._numpy:
                r, l, t, ended = _np.zeros(n), _np.zeros(n, dtype=_np.int64), _np.zeros(n), _np.zeros(n, dtype=bool)
            else:
                r, l, t, ended = [0.0] * n, [0] * n, [0.0] * n, [False] * n
            for e in episodes:
                r[e.env], l[e.env], t[e.env], ended[e.env] = e.statistics.r, e.statistics.l, e.statistics.t, True
            batched["episode"] = {"r": r, "l": l, "t": t}
            batched["_episode"] = ended
        return batched


def _batch_into(batched, info, i, n, use_numpy):
    """Adds sub-environment i's info to Gymnasium's vector layout: batched[key][i] = value and
    batched["_" + key][i] = True; nested dicts alike, one level down. Numbers and booleans go in
    zero-filled arrays of their type, anything else in object arrays (lists of None without numpy)."""
    for key, value in info.items():
        if isinstance(value, dict):
            _batch_into(batched.setdefault(key, {}), value, i, n, use_numpy)
        else:
            if key not in batched:
                number = type(value) in (bool, int, float)
                if use_numpy:
                    batched[key] = _np.zeros(n, dtype=type(value)) if number else _np.full(n, None, dtype=object)
                else:
                    batched[key] = [type(value)()] * n if number else [None] * n
            batched[key][i] = value
        if "_" + key not in batched:
            batched["_" + key] = _np.zeros(n, dtype=bool) if use_numpy else [False] * n
        batched["_" + key][i] = True


def register_envs(scenarios=SHIPPED_SCENARIOS, namespace="mis"):
    """Registers MisEnv with gymnasium as "NAMESPACE/NAME-v0" for each scenario name, so that
    gymnasium.make(id, target=..., backend=..., ...) makes MisEnv(NAME, ...). A scenario in a
    subdirectory ("sub/name") is "NAMESPACE/sub.name-v0" (an id's name cannot hold a "/").
    Importing this module registers SHIPPED_SCENARIOS when gymnasium imports; call this with the
    names list_scenarios() returns for a server with other scenarios. Returns the ids."""
    if _gymnasium is None:
        raise MisGymError(None, "gymnasium does not import: register_envs needs it (MisEnv works without it)")
    ids = []
    for name in scenarios:
        env_id = "%s/%s-v0" % (namespace, name.replace("/", "."))
        if env_id not in _gymnasium.registry:  # registering an id twice makes gymnasium warn
            _gymnasium.register(id=env_id, entry_point=MisEnv, kwargs={"scenario": name})
        ids.append(env_id)
    return ids


def make(scenario, **kwargs):
    """As gymnasium.make: MisEnv(scenario, **kwargs)."""
    return MisEnv(scenario, **kwargs)


def list_scenarios(target=DEFAULT_TARGET, channel=None, timeout=None):
    """The server's scenarios: a list of dicts with name, description, action_names,
    observation_space and action_space (or error, when the file does not load)."""
    pb, rpc = _load_stubs()
    own = channel is None
    channel = channel if channel is not None else grpc.insecure_channel(target)
    try:
        response = _call(rpc.GymServiceStub(channel).ListScenarios, pb.ListScenariosRequest(), timeout)
    finally:
        if own:
            channel.close()
    scenarios = []
    for s in response.scenarios:
        entry = {"name": s.name, "description": s.description, "action_names": list(s.action_names)}
        if s.error:
            entry["error"] = s.error
        else:
            entry["observation_space"] = _space(s.observation_space)
            entry["action_space"] = _space(s.action_space)
        scenarios.append(entry)
    return scenarios


if _gymnasium is not None:
    register_envs()
