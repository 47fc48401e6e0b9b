"""MIS environments from Python, over gRPC: a client of mis.gym.v1.GymService (`mis gym serve`)
shaped like a Gymnasium env, without depending on gymnasium or numpy.

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

Stubs: generated from proto/ on first use with `python3 -m grpc_tools.protoc` (Debian's
python3-grpc-tools) into a temporary directory removed at exit. The proto directory is
$MIS_PROTO_DIR, else ../../proto next to this file (the repository layout).
"""
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

__all__ = ["MisEnv", "MisGymError", "Discrete", "MultiDiscrete", "Box", "make", "list_scenarios", "DEFAULT_TARGET"]

DEFAULT_TARGET = "127.0.0.1:50052"
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
        info["reward_terms"] = {"task": t.task, "slowdown": t.slowdown, "denial": t.denial, "kill": t.kill}
    if message.HasField("episode"):
        info["episode"] = {"r": message.episode.r, "l": message.episode.l, "t": message.episode.t}
    if message.HasField("extra"):
        info.update(json_format.MessageToDict(message.extra))
    return info


class MisEnv:
    """A MIS environment on a `mis gym serve` server, with gymnasium.Env's interface.

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
        self.observation_space = _space(made.observation_space)
        self.action_space = _space(made.action_space)

    @property
    def unwrapped(self):
        return self

    def reset(self, *, seed=None, options=None):
        """Starts an episode: (observation, info). A seed re-seeds the environment (an int32)."""
        request = self._pb.ResetRequest(env_id=self._id())
        if seed is not None:
            request.seed.value = operator.index(seed)
        if options:
            request.options.update(options)
        response = _call(self._stub.Reset, request, self._timeout)
        return list(response.observation), _info(response.info)

    def step(self, action):
        """One action: (observation, reward, terminated, truncated, info)."""
        request = self._pb.StepRequest(env_id=self._id(), action=self._action(action))
        r = _call(self._stub.Step, request, self._timeout)
        return list(r.observation), r.reward, r.terminated, r.truncated, _info(r.info)

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

    def _action(self, action):
        space = self.action_space
        if isinstance(space, Discrete):
            if not _is_int(action):
                raise MisGymError(grpc.StatusCode.INVALID_ARGUMENT, "action %r is not an integer (the action space is %r)" % (action, space))
            return self._pb.Action(discrete=operator.index(action))
        if isinstance(space, MultiDiscrete):
            return self._pb.Action(multi_discrete=self._pb.Int64Vector(values=[operator.index(v) for v in action]))
        return self._pb.Action(box=self._pb.FloatVector(values=[float(v) for v in action]))


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
