#!/usr/bin/python3
"""A random agent on a MIS environment served by `mis gym serve`: a few episodes, their returns.

usage: random_agent.py [--target HOST:PORT|unix:PATH] [--scenario NAME] [--backend sim|kernel]
                       [--episodes N] [--seed S]

Start a server first (./mis gym serve), then run this with Debian's /usr/bin/python3, which has
python3-grpcio and python3-grpc-tools.
"""
import argparse
import sys

import mis_gym


def main():
    parser = argparse.ArgumentParser(description="Random agent on a remote MIS environment.")
    parser.add_argument("--target", default=mis_gym.DEFAULT_TARGET, help="server address (default %(default)s)")
    parser.add_argument("--scenario", default="data-shortcut", help="scenario name (default %(default)s)")
    parser.add_argument("--backend", default="sim", choices=["sim", "kernel"], help="backend (default %(default)s)")
    parser.add_argument("--episodes", type=int, default=5, help="episodes to run (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first reset and of the agent (default %(default)s)")
    args = parser.parse_args()

    try:
        env = mis_gym.MisEnv(args.scenario, target=args.target, backend=args.backend, record_episode_statistics=True)
    except mis_gym.MisGymError as e:
        print("random_agent: %s" % e, file=sys.stderr)
        return 1
    with env:
        env.action_space.seed(args.seed)
        print("env %s: scenario %s on %s, actions %r, observations %r" % (env.env_id, env.scenario, env.backend, env.action_space, env.observation_space))
        returns = []
        for episode in range(args.episodes):
            # Seed the first reset only: later resets continue the environment's random stream.
            obs, info = env.reset(seed=args.seed if episode == 0 else None)
            names = info["action_names"]
            terminated = truncated = False
            while not (terminated or truncated):
                obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            stats = info["episode"]
            returns.append(stats["r"])
            print("episode %d: return %.3f, %d steps, %s by %s (%s), DEFCON %d, %d violations"
                  % (episode, stats["r"], stats["l"], "terminated" if terminated else "truncated",
                     info["action"], info["result"], info["defcon"], info["violations"]))
        print("mean return over %d episodes: %.3f (actions: %s)" % (len(returns), sum(returns) / len(returns), ", ".join(names)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
