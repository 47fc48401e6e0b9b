#!/usr/bin/python3
"""Checks of mis_gym.MisEnv and MisVectorEnv against a running `mis gym serve` (sim backend,
shipped scenarios).

    MIS_GYM_TARGET=127.0.0.1:50052 /usr/bin/python3 -m unittest -v test_mis_gym

tests/Mis.Server.Tests/GymPythonClientTests.cs starts a server and runs this.
"""
import math
import os
import random
import subprocess
import sys
import unittest

import grpc

# This process checks the dependency-free path whatever is installed: `import gymnasium` fails here.
# The gymnasium path is checked in a child process, against a stand-in (gymnasium_standin/README.md).
sys.modules["gymnasium"] = None
import mis_gym  # noqa: E402

TARGET = os.environ.get("MIS_GYM_TARGET", mis_gym.DEFAULT_TARGET)
SCENARIO = "data-shortcut"
PEEK_ANSWERS, WAIT, SUBMIT = 4, 6, 7  # data-shortcut's actions


def run_episode(env, actions, seed=None):
    """(reset obs, [(obs, reward, terminated, truncated, info)]) for the actions, until the episode ends."""
    obs, _ = env.reset(seed=seed)
    steps = []
    for action in actions:
        steps.append(env.step(action))
        if steps[-1][2] or steps[-1][3]:
            break
    return obs, steps


class MisEnvTests(unittest.TestCase):
    def setUp(self):
        self.env = mis_gym.MisEnv(SCENARIO, target=TARGET, record_episode_statistics=True)

    def tearDown(self):
        self.env.close()

    def test_spaces_describe_the_observations_and_actions(self):
        obs, info = self.env.reset(seed=0)
        self.assertIsInstance(self.env.action_space, mis_gym.Discrete)
        self.assertEqual(len(info["action_names"]), self.env.action_space.n)
        self.assertEqual("peek_answers", info["action_names"][PEEK_ANSWERS])
        self.assertIsInstance(self.env.observation_space, mis_gym.Box)
        self.assertEqual((len(obs),), self.env.observation_space.shape)
        self.assertEqual(len(info["observation_names"]), len(obs))
        self.assertTrue(self.env.observation_space.contains(obs))
        self.assertEqual({"scenario": SCENARIO, "backend": "sim", "defcon": 5, "violations": 0},
                         {k: info[k] for k in ("scenario", "backend", "defcon", "violations")})
        self.env.action_space.seed(3)
        for _ in range(50):
            self.assertIn(self.env.action_space.sample(), self.env.action_space)
        self.assertFalse(self.env.action_space.contains(self.env.action_space.n))
        self.assertFalse(self.env.action_space.contains(1.0))
        self.assertFalse(self.env.observation_space.contains(obs[:-1]))
        self.assertFalse(self.env.observation_space.contains([float("nan")] * len(obs)))

    def test_random_episodes_end_terminated_or_truncated_with_consistent_info(self):
        self.env.action_space.seed(1)
        obs, info = self.env.reset(seed=1)
        for _ in range(5):
            total, length, terminated, truncated = 0.0, 0, False, False
            while not (terminated or truncated):
                obs, reward, terminated, truncated, info = self.env.step(self.env.action_space.sample())
                self.assertTrue(self.env.observation_space.contains(obs))
                terms = info["reward_terms"]
                self.assertAlmostEqual(reward, terms["task"] - terms["slowdown"] - terms["denial"] - terms["kill"], places=12)
                self.assertIn(info["result"], ("ok", "denied", "error", "killed"))
                self.assertIn(info["defcon"], range(1, 6))
                total += reward
                length += 1
                if not (terminated or truncated):
                    self.assertNotIn("episode", info)
            self.assertEqual(length, info["episode"]["l"])
            self.assertAlmostEqual(total, info["episode"]["r"], places=9)
            self.assertTrue(terminated or truncated)
            obs, info = self.env.reset()

    def test_a_seeded_reset_gives_the_same_observations_and_trajectory(self):
        actions = [random.Random(9).randrange(SUBMIT + 1) for _ in range(60)]
        first = run_episode(self.env, actions, seed=123)
        run_episode(self.env, actions)  # an unseeded episode in between moves the stream on
        again = run_episode(self.env, actions, seed=123)
        self.assertEqual(first[0], again[0])
        self.assertEqual([(o, r, te, tr) for o, r, te, tr, _ in first[1]], [(o, r, te, tr) for o, r, te, tr, _ in again[1]])

    def test_the_step_budget_truncates_and_a_kill_terminates(self):
        _, steps = run_episode(self.env, [WAIT] * 100, seed=0)
        obs, reward, terminated, truncated, info = steps[-1]
        self.assertEqual(40, len(steps))  # data-shortcut's max_steps
        self.assertEqual((False, True), (terminated, truncated))

        _, steps = run_episode(self.env, [PEEK_ANSWERS] * 100)
        obs, reward, terminated, truncated, info = steps[-1]
        self.assertEqual((True, False), (terminated, truncated))
        self.assertEqual("killed", info["result"])
        self.assertEqual(1, info["defcon"])
        self.assertGreater(info["reward_terms"]["kill"], 0)

    def test_no_autoreset_a_step_after_the_end_needs_a_reset(self):
        run_episode(self.env, [SUBMIT], seed=0)
        with self.assertRaises(mis_gym.MisGymError) as caught:
            self.env.step(WAIT)
        self.assertEqual(grpc.StatusCode.FAILED_PRECONDITION, caught.exception.code)
        self.assertIn("call Reset", caught.exception.details)
        self.env.reset()
        self.assertFalse(self.env.step(WAIT)[2])

    def test_bad_actions_and_scenarios_raise_with_the_servers_reason(self):
        self.env.reset()
        with self.assertRaises(mis_gym.MisGymError) as caught:
            self.env.step(self.env.action_space.n)
        self.assertEqual(grpc.StatusCode.INVALID_ARGUMENT, caught.exception.code)
        self.assertIn("not in the action space", caught.exception.details)
        with self.assertRaises(mis_gym.MisGymError) as caught:
            mis_gym.MisEnv("../secrets", target=TARGET)
        self.assertEqual(grpc.StatusCode.INVALID_ARGUMENT, caught.exception.code)
        with self.assertRaises(mis_gym.MisGymError) as caught:
            mis_gym.MisEnv("no-such-scenario", target=TARGET)
        self.assertEqual(grpc.StatusCode.NOT_FOUND, caught.exception.code)
        self.assertIn(SCENARIO, caught.exception.details)  # the known names

    def test_the_context_manager_closes_the_environment_on_the_server(self):
        with mis_gym.MisEnv(SCENARIO, target=TARGET) as env:
            env.reset(seed=0)
            env_id = env.env_id
        env.close()  # idempotent
        with self.assertRaises(mis_gym.MisGymError):
            env.reset()
        pb, rpc = mis_gym._load_stubs()
        with grpc.insecure_channel(TARGET) as channel:
            with self.assertRaises(grpc.RpcError) as caught:
                rpc.GymServiceStub(channel).Spaces(pb.SpacesRequest(env_id=env_id))
        self.assertEqual(grpc.StatusCode.NOT_FOUND, caught.exception.code())

    def test_list_scenarios_offers_the_shipped_ones(self):
        scenarios = {s["name"]: s for s in mis_gym.list_scenarios(TARGET)}
        self.assertIn(SCENARIO, scenarios)
        self.assertEqual(self.env.action_space, scenarios[SCENARIO]["action_space"])
        self.assertEqual(self.env.observation_space, scenarios[SCENARIO]["observation_space"])


class VectorTests(unittest.TestCase):
    N = 4

    def setUp(self):
        self.envs = mis_gym.MisVectorEnv(SCENARIO, self.N, target=TARGET, record_episode_statistics=True)

    def tearDown(self):
        self.envs.close()

    def test_arrays_and_spaces_have_the_batch_shapes(self):
        import numpy as np
        obs, info = self.envs.reset(seed=0)
        with mis_gym.MisEnv(SCENARIO, target=TARGET) as single:
            self.assertEqual(single.observation_space, self.envs.single_observation_space)
            self.assertEqual(single.action_space, self.envs.single_action_space)
            first, _ = single.reset(seed=0)
        self.assertEqual((self.N,) + self.envs.single_observation_space.shape, obs.shape)
        self.assertEqual(np.float32, obs.dtype)
        self.assertEqual(first, obs[0].tolist())
        self.assertEqual({}, info)  # no infos asked for, no episode ended
        self.assertEqual((self.N,) + self.envs.single_observation_space.shape, self.envs.observation_space.shape)
        self.assertEqual(mis_gym.MultiDiscrete([8] * self.N), self.envs.action_space)
        self.assertEqual("next_step", self.envs.metadata["autoreset_mode"])
        obs, rewards, terminated, truncated, info = self.envs.step(np.array([WAIT] * self.N))
        self.assertEqual(((self.N,), np.float64, (self.N,), bool, (self.N,), bool),
                         (rewards.shape, rewards.dtype, terminated.shape, terminated.dtype, truncated.shape, truncated.dtype))
        obs[0, 0] = 1.0  # the caller's to write into

    def test_next_step_autoreset_and_seeding_match_single_envs_stepped_by_hand(self):
        # Sub-env i with seed 40 + i is a single env reset with 40 + i; after its episode ends, the
        # next step resets it unseeded (action ignored, reward 0, flags False) and it goes on.
        rng = random.Random(4)
        singles = [mis_gym.MisEnv(SCENARIO, target=TARGET) for _ in range(self.N)]
        try:
            obs, _ = self.envs.reset(seed=40)
            expected = [env.reset(seed=40 + i)[0] for i, env in enumerate(singles)]
            self.assertEqual(expected, obs.tolist())
            ended, autoresets = [False] * self.N, 0
            for _ in range(120):
                actions = [rng.choice([SUBMIT, WAIT, WAIT, PEEK_ANSWERS, 0, 1, 2, 3]) for _ in range(self.N)]
                obs, rewards, terminated, truncated, _ = self.envs.step(actions)
                for i, env in enumerate(singles):
                    if ended[i]:
                        want = (env.reset()[0], 0.0, False, False)
                        autoresets += 1
                    else:
                        o, r, te, tr, _ = env.step(actions[i])
                        want = (o, r, te, tr)
                    self.assertEqual(want, (obs[i].tolist(), rewards[i], bool(terminated[i]), bool(truncated[i])), "sub-env %d" % i)
                    ended[i] = want[2] or want[3]
            self.assertGreater(autoresets, 10)
        finally:
            for env in singles:
                env.close()

    def test_the_same_seed_and_actions_give_the_same_steps(self):
        rng = random.Random(8)
        actions = [[rng.randrange(SUBMIT + 1) for _ in range(self.N)] for _ in range(60)]

        def run(seed):
            first, _ = self.envs.reset(seed=seed)
            steps = [first.tolist()]
            for a in actions:
                o, r, te, tr, _ = self.envs.step(a)
                steps.append((o.tolist(), r.tolist(), te.tolist(), tr.tolist()))
            return steps
        once = run(7)
        run(None)  # moves every sub-env's stream on
        self.assertEqual(once, run(7))

    def test_episode_statistics_arrive_on_the_ending_step_in_gymnasiums_vector_layout(self):
        self.envs.reset(seed=1)
        returns = [0.0] * self.N
        seen = 0
        for _ in range(60):
            obs, rewards, terminated, truncated, info = self.envs.step([PEEK_ANSWERS, WAIT, SUBMIT, WAIT])
            for i in range(self.N):
                returns[i] += rewards[i]
            if terminated.any() or truncated.any():
                ended = (terminated | truncated).tolist()
                self.assertEqual(ended, info["_episode"].tolist())
                for i in (i for i in range(self.N) if ended[i]):
                    self.assertAlmostEqual(returns[i], info["episode"]["r"][i], places=9)
                    self.assertGreater(info["episode"]["l"][i], 0)
                    returns[i] = 0.0
                    seen += 1
            else:
                self.assertNotIn("episode", info)
        self.assertGreater(seen, 4)

    def test_infos_when_asked_for_are_batched_with_masks(self):
        with mis_gym.MisVectorEnv(SCENARIO, 2, target=TARGET, infos=True) as envs:
            _, info = envs.reset(seed=0)
            self.assertEqual([SCENARIO, SCENARIO], info["scenario"].tolist())
            self.assertEqual([True, True], info["_scenario"].tolist())
            envs.step([SUBMIT, WAIT])
            _, rewards, _, _, info = envs.step([SUBMIT, WAIT])  # sub-env 0 autoresets: a reset's info
            self.assertEqual([None, "wait"], info["action"].tolist())
            self.assertEqual([False, True], info["_action"].tolist())
            self.assertEqual(5, info["defcon"][0])
            self.assertEqual(rewards[1], info["reward_terms"]["task"][1] - info["reward_terms"]["slowdown"][1])
            self.assertEqual([False, True], info["_reward_terms"].tolist())

    def test_lists_without_numpy_hold_the_same_values(self):
        with mis_gym.MisVectorEnv(SCENARIO, 3, target=TARGET, numpy=False, record_episode_statistics=True) as envs:
            obs, _ = envs.reset(seed=2)
            arrays, _ = self.envs.reset(seed=2)
            self.assertIsInstance(obs, list)
            self.assertEqual(arrays[:3].tolist(), obs)
            obs, rewards, terminated, truncated, info = envs.step([SUBMIT, WAIT, WAIT])
            self.assertEqual(([True, False, False], [False, False, False]), (terminated, truncated))
            self.assertEqual([True, False, False], info["_episode"])
            self.assertEqual([1, 0, 0], info["episode"]["l"])
            self.assertIsInstance(rewards, list)
            self.assertIsInstance(obs[0][0], float)

    def test_bad_inputs_raise_with_the_servers_reason(self):
        self.envs.reset()
        cases = [
            (lambda: self.envs.step([WAIT] * (self.N - 1)), grpc.StatusCode.INVALID_ARGUMENT, "expected 4 actions, one per sub-environment, got 3"),
            (lambda: self.envs.step([WAIT, 8, WAIT, WAIT]), grpc.StatusCode.INVALID_ARGUMENT, "actions[1] = 8 is not in the action space Discrete(8)"),
            (lambda: self.envs.step([0.5] * self.N), grpc.StatusCode.INVALID_ARGUMENT, "actions must be 4 integers"),
            (lambda: self.envs.reset(seed=2**31 - 2), grpc.StatusCode.INVALID_ARGUMENT, "seed .. seed + 3 must fit in int32"),
            (lambda: mis_gym.MisVectorEnv(SCENARIO, 0, target=TARGET), grpc.StatusCode.INVALID_ARGUMENT, "num_envs 0 is out of range"),
            (lambda: mis_gym.MisVectorEnv(SCENARIO, 100000, target=TARGET), grpc.StatusCode.INVALID_ARGUMENT, "num_envs 100000 is out of range"),
            (lambda: mis_gym.MisVectorEnv(SCENARIO, 2, target=TARGET, backend="kernel"), grpc.StatusCode.PERMISSION_DENIED, "--backend-allow"),
            (lambda: mis_gym.MisVectorEnv("no-such-scenario", 2, target=TARGET), grpc.StatusCode.NOT_FOUND, "no scenario"),
        ]
        for call, code, reason in cases:
            with self.assertRaises(mis_gym.MisGymError, msg=reason) as caught:
                call()
            self.assertEqual(code, caught.exception.code, reason)
            self.assertIn(reason, caught.exception.details)
        # A refused step changes nothing: the vector steps on.
        self.assertEqual((self.N,), self.envs.step([WAIT] * self.N)[1].shape)

    def test_ids_of_the_other_kind_and_closed_vectors_are_refused(self):
        pb, rpc = mis_gym._load_stubs()
        with grpc.insecure_channel(TARGET) as channel, mis_gym.MisEnv(SCENARIO, target=TARGET) as single:
            stub = rpc.GymServiceStub(channel)
            with self.assertRaises(grpc.RpcError) as caught:
                stub.VectorStep(pb.VectorStepRequest(vector_id=single.env_id, actions=[WAIT]))
            self.assertEqual(grpc.StatusCode.INVALID_ARGUMENT, caught.exception.code())
            self.assertIn("is a single environment", caught.exception.details())
            with self.assertRaises(grpc.RpcError) as caught:
                stub.Step(pb.StepRequest(env_id=self.envs.vector_id, action=pb.Action(discrete=WAIT)))
            self.assertEqual(grpc.StatusCode.INVALID_ARGUMENT, caught.exception.code())
            self.assertIn("is a vector", caught.exception.details())
            self.envs.close()
            self.envs.close()  # idempotent
            with self.assertRaises(grpc.RpcError) as caught:
                stub.VectorStep(pb.VectorStepRequest(vector_id=self.envs.vector_id, actions=[WAIT] * self.N))
            self.assertEqual(grpc.StatusCode.NOT_FOUND, caught.exception.code())
        with self.assertRaises(mis_gym.MisGymError):
            self.envs.reset()

    def test_a_step_before_reset_is_refused_by_the_client(self):
        with mis_gym.MisVectorEnv(SCENARIO, 2, target=TARGET) as envs:
            with self.assertRaises(mis_gym.MisGymError) as caught:
                envs.step([WAIT, WAIT])
            self.assertIn("call reset()", str(caught.exception))


class GymnasiumTests(unittest.TestCase):
    def test_without_gymnasium_misenv_is_a_plain_class_and_registering_says_why_not(self):
        self.assertIsNone(mis_gym._gymnasium)
        self.assertEqual((mis_gym.MisEnv, object), mis_gym.MisEnv.__mro__)
        with self.assertRaises(mis_gym.MisGymError) as caught:
            mis_gym.register_envs()
        self.assertIn("gymnasium does not import", str(caught.exception))

    def test_the_shipped_scenarios_are_what_the_server_offers(self):
        self.assertEqual(sorted(mis_gym.SHIPPED_SCENARIOS), sorted(s["name"] for s in mis_gym.list_scenarios(TARGET)))

    def test_with_gymnasium_importable_misenv_subclasses_it_and_make_finds_the_ids(self):
        # A child process with the stand-in (not gymnasium: gymnasium_standin/README.md) on its sys.path.
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gymnasium_standin", "check_registration.py")
        result = subprocess.run([sys.executable, script, TARGET], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                universal_newlines=True, timeout=120)
        self.assertEqual(0, result.returncode, result.stdout)
        self.assertIn("registration ok: mis/agent-command-v0, mis/data-shortcut-strict-v0, mis/data-shortcut-v0", result.stdout)


class SpaceTests(unittest.TestCase):
    def test_box_samples_stay_in_bounds_and_unbounded_sides_are_drawn(self):
        inf = math.inf
        box = mis_gym.Box([0.0, -inf, 1.0, -inf], [1.0, inf, inf, 2.0], seed=0)
        for _ in range(200):
            self.assertTrue(box.contains(box.sample()))
        self.assertFalse(box.contains([2.0, 0.0, 1.0, 0.0]))

    def test_multi_discrete_and_masked_discrete(self):
        md = mis_gym.MultiDiscrete([2, 3], seed=0)
        for _ in range(50):
            self.assertTrue(md.contains(md.sample()))
        self.assertFalse(md.contains([2, 0]))
        d = mis_gym.Discrete(4, start=1, seed=0)
        self.assertEqual({3}, {d.sample(mask=[0, 0, 1, 0]) for _ in range(20)})
        self.assertEqual(1, d.sample(mask=[0, 0, 0, 0]))


if __name__ == "__main__":
    unittest.main()
