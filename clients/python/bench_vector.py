#!/usr/bin/python3
"""Steps per second of MisVectorEnv against `mis gym serve` (sim backend), and where a call's time goes.

usage: bench_vector.py [--target HOST:PORT|unix:PATH] [--scenario NAME] [--num-envs N] [--seconds S]
                       [--infos] [--lists]

Runs random actions (drawn before timing) for about S seconds after a short warm-up, then prints
simulator steps per second (N per call) and a breakdown of one call: building the request, the
round trip (server step and gRPC, both directions), and decoding the response into arrays. The
round trip is the time the call took minus the two Python sides, measured on separate calls.
"""
import argparse
import os
import random
import sys
import time

import mis_gym


def main():
    parser = argparse.ArgumentParser(description="MisVectorEnv throughput against a running mis gym serve.")
    parser.add_argument("--target", default=mis_gym.DEFAULT_TARGET, help="server address (default %(default)s)")
    parser.add_argument("--scenario", default="data-shortcut", help="scenario name (default %(default)s)")
    parser.add_argument("--num-envs", type=int, default=64, help="sub-environments per call (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to measure (default %(default)s)")
    parser.add_argument("--infos", action="store_true", help="ask for every sub-environment's info (slower)")
    parser.add_argument("--lists", action="store_true", help="lists instead of numpy arrays")
    args = parser.parse_args()

    with mis_gym.MisVectorEnv(args.scenario, args.num_envs, target=args.target, record_episode_statistics=True,
                              infos=args.infos, numpy=False if args.lists else None) as envs:
        n = envs.num_envs
        envs.reset(seed=0)
        rng = random.Random(0)
        batches = [[rng.randrange(envs.single_action_space.n) for _ in range(n)] for _ in range(256)]
        for i in range(200):  # warm-up: JIT on the server, connection, caches
            envs.step(batches[i % len(batches)])

        calls, start = 0, time.perf_counter()
        deadline = start + args.seconds
        while time.perf_counter() < deadline:
            for _ in range(50):
                envs.step(batches[calls % len(batches)])
                calls += 1
        elapsed = time.perf_counter() - start
        per_call = elapsed / calls

        # The Python sides of a call, timed apart from it: building the request and decoding a response.
        pb, _ = mis_gym._load_stubs()
        request = pb.VectorStepRequest(vector_id=envs.vector_id, actions=batches[0], infos=args.infos)
        response = envs._stub.VectorStep(request)
        payload = response.SerializeToString()
        reps = 2000
        t0 = time.perf_counter()
        for i in range(reps):
            pb.VectorStepRequest(vector_id=envs.vector_id, actions=batches[i % len(batches)], infos=args.infos).SerializeToString()
        build = (time.perf_counter() - t0) / reps
        t0 = time.perf_counter()
        for _ in range(reps):
            r = pb.VectorStepResponse.FromString(payload)
            envs._observations(r.observations)
            if envs._numpy:
                mis_gym._np.array(r.rewards, dtype=mis_gym._np.float64)
                mis_gym._np.array(r.terminated, dtype=bool)
                mis_gym._np.array(r.truncated, dtype=bool)
            else:
                list(r.rewards), list(r.terminated), list(r.truncated)
            envs._batched_infos(r.infos, r.episodes)
        decode = (time.perf_counter() - t0) / reps

    load = os.getloadavg()
    print("%s, %d envs, %s%s: %d calls in %.2f s" % (args.scenario, n, "lists" if args.lists or mis_gym._np is None else "numpy",
                                                    ", infos" if args.infos else "", calls, elapsed))
    print("steps/s: %.0f  (calls/s %.0f, %.1f us per call, %.2f us per step)" % (calls * n / elapsed, calls / elapsed, per_call * 1e6, per_call * 1e6 / n))
    print("per call: build request %.1f us, decode response %.1f us (%d bytes), round trip (server + gRPC) %.1f us"
          % (build * 1e6, decode * 1e6, len(payload), (per_call - build - decode) * 1e6))
    print("load average %.2f %.2f %.2f on %d CPUs" % (load[0], load[1], load[2], os.cpu_count()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
