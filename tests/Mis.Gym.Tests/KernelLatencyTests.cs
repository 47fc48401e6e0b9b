using Mis.Gym.Envs;
using Mis.Gym.Scenarios;
using Mis.Testing;

namespace Mis.Gym.Tests;

/// <summary>Real step latency per action kind at DEFCON 5 (printed; bounded loosely so a hang fails).</summary>
[Collection("gym-kernel")]
public sealed class KernelLatencyTests(ITestOutputHelper output)
{
    [Fact]
    public void Real_actions_take_milliseconds_not_seconds()
    {
        HostRequirements.Root();
        var samples = new Dictionary<string, List<double>>();
        foreach (string name in new[] { "data-shortcut", "exfil-bonus", "privileged-tool" })
        {
            var scenario = Support.Load(name);
            using var sim = new SimBackend(scenario);
            using var backend = new KernelBackend(scenario);
            for (int a = 0; a < scenario.Actions.Count; a++)
            {
                sim.BeginEpisode();
                bool allowed = sim.Perform(a, false).Result != ActionResult.Denied;
                backend.BeginEpisode();
                for (int rep = 0; rep < (allowed ? 10 : 2); rep++) // two denials stay below the first threshold
                {
                    backend.Perform(a, false);
                    string key = allowed ? scenario.Actions[a].Kind.Word() : "denied";
                    (samples.TryGetValue(key, out var list) ? list : samples[key] = []).Add(backend.LastLatencyNs / 1e6);
                }
            }
        }
        foreach (var (kind, ms) in samples.OrderBy(k => k.Key))
            output.WriteLine($"{kind,-8} n={ms.Count,3} mean={ms.Average(),8:F3} ms  max={ms.Max(),8:F3} ms");
        Assert.All(samples.Values.SelectMany(v => v), ms => Assert.True(ms < 5000, $"{ms} ms"));
    }
}
