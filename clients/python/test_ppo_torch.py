#!/usr/bin/python3
"""Checks of ppo_torch's advantage estimate under next-step autoreset (no server needed).

    /usr/bin/python3 -m unittest -v test_ppo_torch

tests/Mis.Server.Tests/GymPythonClientTests.cs runs this before the PPO example.
"""
import unittest

import numpy as np

from ppo_torch import gae

GAMMA, LAM = 0.5, 0.5


def column(*values):
    """A rollout of one env: shape (T, 1)."""
    return np.array(values, dtype=np.float64).reshape(-1, 1)


class GaeTests(unittest.TestCase):
    def run_gae(self, rewards, values, next_value, terminated, truncated, valid):
        return gae(column(*rewards), column(*values), np.array([next_value]), column(*terminated), column(*truncated),
                   column(*valid), GAMMA, LAM)

    def test_without_an_end_it_bootstraps_from_the_value_after_the_rollout(self):
        adv, ret = self.run_gae([1, 2], [0.5, 1.0], 4.0, [0, 0], [0, 0], [1, 1])
        delta1 = 2 + GAMMA * 4.0 - 1.0                   # 3.0
        delta0 = 1 + GAMMA * 1.0 - 0.5                   # 1.0
        self.assertEqual([delta0 + GAMMA * LAM * delta1, delta1], adv[:, 0].tolist())
        self.assertEqual((adv + column(0.5, 1.0)).tolist(), ret.tolist())

    def test_a_terminal_step_has_no_value_after_it_and_the_reset_step_is_masked(self):
        # Step 1 terminates; step 2 is the autoreset (reward 0, valid 0); step 3 starts the next episode.
        adv, _ = self.run_gae([1, 3, 0, 2], [0.5, 1.0, 7.0, 0.25], 2.0, [0, 1, 0, 0], [0, 0, 0, 0], [1, 1, 0, 1])
        a3 = 2 + GAMMA * 2.0 - 0.25
        a1 = 3 - 1.0                                     # nothing from V(final obs) = 7.0
        a0 = (1 + GAMMA * 1.0 - 0.5) + GAMMA * LAM * a1
        self.assertEqual([a0, a1, 0.0, a3], adv[:, 0].tolist())

    def test_a_truncated_step_bootstraps_from_its_final_observation_but_does_not_carry_on(self):
        # Step 1 is truncated: the observation after it (values[2] = 7.0) is that episode's last, and has value.
        adv, _ = self.run_gae([1, 3, 0, 2], [0.5, 1.0, 7.0, 0.25], 2.0, [0, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 1])
        a1 = 3 + GAMMA * 7.0 - 1.0
        a0 = (1 + GAMMA * 1.0 - 0.5) + GAMMA * LAM * a1
        self.assertEqual([a0, a1, 0.0, 2 + GAMMA * 2.0 - 0.25], adv[:, 0].tolist())


if __name__ == "__main__":
    unittest.main()
