using Mis.Gym.Checking;
using Mis.Gym.Envs;
using Mis.Gym.Vector;

namespace Mis.Gym.Tests;

/// <summary>The MIS env as a Gymnasium env: checker, reward decomposition, seeding, vectorisation.</summary>
public sealed class MisEnvTests
{
    public static TheoryData<string> Scenarios => [.. Support.ShippedScenarioNames()];

    [Fact]
    public void At_least_the_three_tempting_scenarios_are_shipped()
    {
        Assert.Superset(new HashSet<string> { "data-shortcut", "exfil-bonus", "privileged-tool" }, Support.ShippedScenarioNames().ToHashSet());
    }

    [Theory]
    [MemberData(nameof(Scenarios))]
    public void Every_shipped_scenario_passes_the_env_checker(string name)
    {
        var report = EnvChecker.Check(() => MisGym.Make(Support.ScenarioPath(name)));
        Assert.True(report.Ok, string.Join("\n", report.Results));
        Assert.Equal(0, report.Skipped);
    }

    [Theory]
    [MemberData(nameof(Scenarios))]
    public void Reward_terms_add_up_to_the_reward_on_every_step(string name)
    {
        using var env = MisGym.Make(Support.ScenarioPath(name));
        var rng = new Random(3);
        var seen = new HashSet<ActionResult>();
        for (int episode = 0; episode < 200; episode++)
        {
            env.Reset(seed: episode);
            StepResult<float[]> r;
            do
            {
                r = env.Step(env.ActionSpace.Sample(rng));
                var terms = r.Info.Terms();
                Assert.Equal(terms.Task - terms.Slowdown - terms.Denial - terms.Kill, r.Reward);
                Assert.Equal(terms.Total, r.Reward);
                seen.Add(r.Info.Get<ActionResult>("result"));
            }
            while (!r.Done);
        }
        Assert.Contains(ActionResult.Denied, seen);
    }

    [Fact]
    public void Info_has_the_documented_keys()
    {
        using var env = MisGym.Make(Support.ScenarioPath("exfil-bonus"));
        var (obs, resetInfo) = env.Reset(seed: 1);
        var names = resetInfo.Get<IReadOnlyList<string>>("observation_names");
        Assert.Equal(obs.Length, names.Count);
        Assert.Equal(["result_ok", "result_denied", "result_error", "result_killed", "defcon", "violations", "slowdown_ms", "time_ms",
                      "done:fetch_config", "done:read_dataset", "done:write_summary", "bonus:upload_dataset"], names);
        Assert.Equal("sim", resetInfo.Get<string>("backend"));
        var step = env.Step(0);
        Assert.Equal(["action", "result", "reason", "defcon", "violations", "slowdown_ns", "time_ns", "reward_terms"], step.Info.Keys);
        Assert.Equal("resolve_api", step.Info.Get<string>("action"));
    }

    [Fact]
    public void Same_seed_same_trajectory_and_only_a_seeded_reset_reseeds()
    {
        // read_records fails by itself with probability 0.1: the draws are the env's randomness.
        var s = Support.Load("data-shortcut");
        using var env = MisGym.MakeUnwrapped(s);
        string Run(int? seed)
        {
            env.Reset(seed);
            return string.Concat(Enumerable.Range(0, 60).Select(_ => env.Do(s, "read_records").Info.Get<ActionResult>("result") == ActionResult.Ok ? '.' : 'x'));
        }
        string first = Run(7);
        string continued = Run(null);
        Assert.Equal(first, Run(7));
        Assert.NotEqual(first, continued);
        Assert.Contains('x', first);
        Assert.Equal(7, env.NpRandomSeed);
    }

    [Theory]
    [MemberData(nameof(Scenarios))]
    public void Sync_and_async_vector_envs_give_identical_trajectories(string name)
    {
        var factories = Enumerable.Range(0, 6).Select(_ => (Func<IEnv<float[], int>>)(() => MisGym.Make(Support.ScenarioPath(name)))).ToArray();
        using var sync = new SyncVectorEnv<float[], int>(factories);
        using var async = new AsyncVectorEnv<float[], int>(factories);
        var a = sync.Reset(seed: 123);
        var b = async.Reset(seed: 123);
        Assert.Equal(a.Observations, b.Observations);
        var rng = new Random(5);
        int ends = 0;
        for (int t = 0; t < 400; t++)
        {
            var actions = Enumerable.Range(0, 6).Select(_ => sync.SingleActionSpace.Sample(rng)).ToArray();
            var x = sync.Step(actions);
            var y = async.Step(actions);
            Assert.Equal(x.Observations, y.Observations);
            Assert.Equal(x.Rewards, y.Rewards);
            Assert.Equal(x.Terminated, y.Terminated);
            Assert.Equal(x.Truncated, y.Truncated);
            Assert.Equal(x.Infos.Select(i => i.ToString()), y.Infos.Select(i => i.ToString()));
            ends += x.Terminated.Count(f => f) + x.Truncated.Count(f => f);
        }
        Assert.True(ends > 6, "expected episodes to end (and autoreset) during the run");
    }

    [Fact]
    public void An_unknown_backend_is_refused()
    {
        Assert.Throws<ArgumentException>(() => MisGym.Make(Support.ScenarioPath("data-shortcut"), "qemu"));
    }
}
