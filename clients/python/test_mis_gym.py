#!/usr/bin/python3
"""Checks of mis_gym.MisEnv against a running `mis gym serve` (sim backend, shipped scenarios).

    MIS_GYM_TARGET=127.0.0.1:50052 /usr/bin/python3 -m unittest -v test_mis_gym

tests/Mis.Server.Tests/GymPythonClientTests.cs starts a server and runs this.
"""
import math
import os
import random
import unittest

import grpc

import mis_gym

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
