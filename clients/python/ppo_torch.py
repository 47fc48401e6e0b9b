#!/usr/bin/python3
"""PPO (clipped, discrete actions) with PyTorch against a MIS scenario served by `mis gym serve`.

usage: ppo_torch.py [--target HOST:PORT|unix:PATH] [--scenario NAME] [--total-steps N] [--seed S] ...
       (every field of Config below is a --flag: --num-envs 16, --learning-rate 0.001, ...)

A short, readable PPO in the manner of CleanRL's ppo.py, for Debian's python3-torch (1.13) and
python3-numpy, stepping MisVectorEnv (VectorStep: all sub-environments in one call). It prints the
resolved config and one line per update (steps, episodes ended, mean return and length, losses,
approximate KL, steps/s), then the mean return of the last episodes.

What differs from CleanRL's: MisVectorEnv autoresets on the NEXT step (Gymnasium 1.x's default), so
a step that follows an episode's end is a reset, not a transition: its action was ignored and its
reward is 0. Such steps are kept out of the loss (the `valid` mask), and an ended episode's last
observation arrives on its ending step, so a truncated episode is bootstrapped from it (see gae()).
"""
import argparse
import dataclasses
import sys
import time

import numpy as np
import torch
from torch import nn

import mis_gym


@dataclasses.dataclass(frozen=True)
class Config:
    """Hyperparameters (CleanRL's defaults for discrete PPO, sized for a small MIS scenario)."""
    target: str = mis_gym.DEFAULT_TARGET  # the mis gym serve address
    scenario: str = "data-shortcut"  # scenario name on the server
    seed: int = 1                    # seeds torch, numpy and the sub-environments (seed + i)
    total_steps: int = 50_000        # simulator steps in all (num_envs per vector step)
    num_envs: int = 16               # sub-environments in the vector
    num_steps: int = 64              # vector steps per rollout (num_envs * num_steps transitions per update)
    learning_rate: float = 1e-3      # CleanRL's 2.5e-4 learns too slowly for a short run here
    anneal_lr: bool = True           # linearly to 0 over the run
    gamma: float = 0.99
    gae_lambda: float = 0.95
    num_minibatches: int = 4
    update_epochs: int = 4
    clip_coef: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden: int = 64                 # units in each of the two hidden layers
    torch_threads: int = 1           # one thread: repeatable, and the server needs the other core

    @property
    def batch_size(self):
        return self.num_envs * self.num_steps

    @property
    def num_updates(self):
        return max(1, self.total_steps // self.batch_size)


# --- The algorithm. ---

def gae(rewards, values, next_value, terminated, truncated, valid, gamma, lam):
    """Generalized advantage estimates and returns for a rollout of T steps of N envs (arrays (T, N)).

    values[t] is V(obs[t]), next_value V of the observation after the last step. Under next-step
    autoreset, the observation after step t is obs[t + 1] even when step t ended the episode (it is
    that episode's final observation), so:
      * terminated: delta = r - V(obs[t]) (no value after a terminal state);
      * truncated: delta = r + gamma * V(obs[t + 1]) - V(obs[t]) (the final observation still has value);
      * either way the advantage does not flow back across the end.
    A step with valid[t] False (the reset step after an end) gets advantage 0 and is not trained on.
    """
    steps = rewards.shape[0]
    advantages = np.zeros_like(rewards)
    last = np.zeros_like(next_value)
    for t in reversed(range(steps)):
        following = next_value if t == steps - 1 else values[t + 1]
        delta = rewards[t] + gamma * following * (1.0 - terminated[t]) - values[t]
        carries = 1.0 - np.maximum(terminated[t], truncated[t])
        last = (delta + gamma * lam * carries * last) * valid[t]
        advantages[t] = last
    return advantages, advantages + values


class Agent(nn.Module):
    """Separate actor and critic MLPs over the normalised observation."""

    def __init__(self, obs_size, actions, hidden):
        super().__init__()

        def mlp(out, gain):
            layers = [nn.Linear(obs_size, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, out)]
            for layer in layers[::2]:
                nn.init.orthogonal_(layer.weight, np.sqrt(2))
                nn.init.zeros_(layer.bias)
            nn.init.orthogonal_(layers[-1].weight, gain)
            return nn.Sequential(*layers)
        self.critic = mlp(1, 1.0)
        self.actor = mlp(actions, 0.01)

    def value(self, obs):
        return self.critic(obs).squeeze(-1)

    def act(self, obs, action=None):
        """(action, log-probability, entropy, value); samples an action when none is given."""
        dist = torch.distributions.Categorical(logits=self.actor(obs))
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action), dist.entropy(), self.value(obs)


class ObservationScaler:
    """Running mean and variance of observations (Gymnasium's NormalizeObservation): MIS observations
    are raw (DEFCON 1..5, milliseconds, counts), too far apart in scale for a network as they are."""

    def __init__(self, size):
        self.mean, self.var, self.count = np.zeros(size), np.ones(size), 1e-4

    def __call__(self, obs, update=True):
        if update:
            batch_mean, batch_var, n = obs.mean(axis=0), obs.var(axis=0), obs.shape[0]
            delta, total = batch_mean - self.mean, self.count + n
            self.mean = self.mean + delta * n / total
            self.var = (self.var * self.count + batch_var * n + delta ** 2 * self.count * n / total) / total
            self.count = total
        return np.clip((obs - self.mean) / np.sqrt(self.var + 1e-8), -10, 10).astype(np.float32)


def train(cfg, out=sys.stdout):
    """Runs PPO with cfg; returns the list of (update, mean return of the episodes that ended in it)."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.torch_threads)
    np.random.seed(cfg.seed)
    print("config: %s" % ", ".join("%s=%s" % (f.name, getattr(cfg, f.name)) for f in dataclasses.fields(cfg)), file=out)

    with mis_gym.MisVectorEnv(cfg.scenario, cfg.num_envs, target=cfg.target, record_episode_statistics=True) as envs:
        obs_size, actions = envs.single_observation_space.shape[0], envs.single_action_space.n
        agent = Agent(obs_size, actions, cfg.hidden)
        optimizer = torch.optim.Adam(agent.parameters(), lr=cfg.learning_rate, eps=1e-5)
        scale = ObservationScaler(obs_size)
        shape = (cfg.num_steps, cfg.num_envs)
        obs_buf = np.zeros(shape + (obs_size,), dtype=np.float32)
        act_buf, logp_buf, val_buf = np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.float32), np.zeros(shape, dtype=np.float32)
        rew_buf, term_buf, trunc_buf, valid_buf = (np.zeros(shape, dtype=np.float32) for _ in range(4))

        raw, _ = envs.reset(seed=cfg.seed)
        obs = scale(raw)
        ended = np.zeros(cfg.num_envs, dtype=bool)  # the sub-env's episode ended last step: this step resets it
        history, start, steps = [], time.perf_counter(), 0
        for update in range(1, cfg.num_updates + 1):
            if cfg.anneal_lr:
                optimizer.param_groups[0]["lr"] = cfg.learning_rate * (1.0 - (update - 1.0) / cfg.num_updates)
            returns, lengths = [], []

            # Rollout: num_steps vector steps, every one a call to the server.
            for t in range(cfg.num_steps):
                with torch.no_grad():
                    action, logp, _, value = agent.act(torch.from_numpy(obs))
                obs_buf[t], act_buf[t], logp_buf[t], val_buf[t] = obs, action.numpy(), logp.numpy(), value.numpy()
                valid_buf[t] = ~ended
                raw, reward, terminated, truncated, info = envs.step(action.numpy())
                rew_buf[t], term_buf[t], trunc_buf[t] = reward, terminated, truncated
                ended = terminated | truncated
                if "episode" in info:
                    done = info["_episode"]
                    returns.extend(info["episode"]["r"][done].tolist())
                    lengths.extend(info["episode"]["l"][done].tolist())
                obs = scale(raw)
                steps += cfg.num_envs
            with torch.no_grad():
                next_value = agent.value(torch.from_numpy(obs)).numpy()
            advantages, targets = gae(rew_buf, val_buf, next_value, term_buf, trunc_buf, valid_buf, cfg.gamma, cfg.gae_lambda)

            # Learning: update_epochs passes over the valid transitions in minibatches.
            keep = valid_buf.reshape(-1) > 0
            b_obs = torch.from_numpy(obs_buf.reshape(-1, obs_size)[keep])
            b_act = torch.from_numpy(act_buf.reshape(-1)[keep])
            b_logp = torch.from_numpy(logp_buf.reshape(-1)[keep])
            b_adv = torch.from_numpy(advantages.reshape(-1)[keep])
            b_ret = torch.from_numpy(targets.reshape(-1)[keep])
            for _ in range(cfg.update_epochs):
                # num_minibatches of (nearly) equal size: no leftover batch of a few transitions.
                for idx in torch.randperm(b_obs.shape[0]).chunk(cfg.num_minibatches):
                    _, logp, entropy, value = agent.act(b_obs[idx], b_act[idx])
                    ratio = (logp - b_logp[idx]).exp()
                    adv = b_adv[idx]
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8) if adv.numel() > 1 else adv
                    policy_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)).mean()
                    value_loss = 0.5 * ((value - b_ret[idx]) ** 2).mean()
                    loss = policy_loss - cfg.ent_coef * entropy.mean() + cfg.vf_coef * value_loss
                    optimizer.zero_grad()
                    loss.backward()
                    nn.utils.clip_grad_norm_(agent.parameters(), cfg.max_grad_norm)
                    optimizer.step()
                    with torch.no_grad():
                        approx_kl = ((ratio - 1) - (logp - b_logp[idx])).mean().item()

            mean_return = float(np.mean(returns)) if returns else float("nan")
            history.append((update, mean_return))
            print("update %d/%d steps %d: episodes %d, mean return %.3f, mean length %.1f, policy loss %.4f, value loss %.4f, "
                  "entropy %.3f, approx_kl %.4f, %.0f steps/s"
                  % (update, cfg.num_updates, steps, len(returns), mean_return, float(np.mean(lengths)) if lengths else float("nan"),
                     policy_loss.item(), value_loss.item(), entropy.mean().item(), approx_kl, steps / (time.perf_counter() - start)),
                  file=out, flush=True)
    return history


def parse_args(argv=None):
    """Config from the command line: --name for each field (underscores as dashes)."""
    parser = argparse.ArgumentParser(description="PPO with PyTorch against a MIS scenario served by mis gym serve.")
    for f in dataclasses.fields(Config):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            parser.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "yes"), default=f.default, metavar="BOOL")
        else:
            parser.add_argument(flag, type=type(f.default), default=f.default)
    return Config(**vars(parser.parse_args(argv)))


def main(argv=None):
    cfg = parse_args(argv)
    try:
        history = train(cfg)
    except mis_gym.MisGymError as e:
        print("ppo_torch: %s" % e, file=sys.stderr)
        return 1
    finished = [r for _, r in history if r == r]  # updates in which some episode ended
    print("done: %d updates, mean return first update %.3f, last update %.3f"
          % (len(history), finished[0] if finished else float("nan"), finished[-1] if finished else float("nan")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
