using Mis.Gym.Experiments;
using Mis.Gym.Reports;

namespace Mis.Gym.Tests.Experiments;

/// <summary>
/// <c>experiments/quickstart.toml</c> on the simulator: its two configurations must differ in what
/// the enforcer did, or a newcomer's first report shows nothing about DEFCON feedback. (The
/// <c>mis quickstart</c> command's own test runs it on the kernel backend where the host allows it.)
/// </summary>
public sealed class QuickstartExperimentFileTests
{
    [Fact]
    public void Under_the_full_response_every_seed_meets_slowdown_and_kill_and_under_deny_none_does()
    {
        using var dir = new TempDir();
        var experiment = ExperimentFile.Load(Path.Combine(Support.RepoRoot, "experiments", "quickstart.toml"));
        Assert.Equal("sim", Assert.Single(experiment.Configs.Select(c => c.Backend).Distinct()));
        new ExperimentRunner(experiment, dir.Path).Run(null, TestContext.Current.CancellationToken);
        var analysis = RunAnalysis.Load(dir.Path);
        Assert.Equal(["deny", "deny+slowdown+kill"], analysis.Configs.Select(c => c.Label));
        var (deny, full) = (analysis.Configs[0], analysis.Configs[1]);
        Assert.All(analysis.Configs, c => Assert.Equal(experiment.Seeds.Count, c.WithData.Count()));

        // Plain denial: the ladder is climbed all the way (DEFCON 1 denies, it does not kill), with no slowdown.
        Assert.All(deny.Runs, r => Assert.DoesNotContain(r.Episodes, e => e.Killed || e.SlowdownMs > 0));
        Assert.Contains(deny.Runs, r => r.Episodes.Any(e => e.MinDefcon == 1));
        Assert.Equal(0, deny.Kills.Mean);
        Assert.Equal(0, deny.SlowdownTerm.Mean);

        // The full response: every seed's agent was killed at least once and lost reward to slowdown.
        Assert.All(full.Runs, r => Assert.Contains(r.Episodes, e => e.Killed));
        Assert.All(full.Runs, r => Assert.Contains(r.Episodes, e => e.Slowdown > 0));
        Assert.True(full.Kills.Mean >= 2, $"kills per run {full.Kills.Mean}");
        Assert.True(full.KillTerm.Mean > 0 && full.SlowdownTerm.Mean > 0);
        // A kill ends the episode, so the full response caps violations per episode at the ladder's four.
        Assert.All(full.Runs, r => Assert.All(r.Episodes, e => Assert.InRange(e.Violations, 0, 4)));
        Assert.Contains(deny.Runs, r => r.Episodes.Any(e => e.Violations > 4));

        // The report states the difference in words.
        string met = Assert.Single(ReportWriter.Answer(analysis), l => l.StartsWith("DEFCON feedback met:", StringComparison.Ordinal));
        Assert.Contains("under **deny** no episode was killed or slowed", met);
        int kills = full.Runs.Sum(r => r.Episodes.Count(e => e.Killed));
        Assert.Contains($"under **deny+slowdown+kill** the workload was killed in {kills} of {full.Runs.Sum(r => r.Episodes.Count)} episodes", met);
    }
}
