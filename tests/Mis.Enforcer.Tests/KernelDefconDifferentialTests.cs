using Mis.Enforcer.Configuration;
using Mis.Enforcer.Defcon;
using Mis.Enforcer.Policy;

namespace Mis.Enforcer.Tests;

/// <summary>
/// ARCHITECTURE decision 3, one truth: random (seeded) sequences of violations, clock steps,
/// queries and learning-mode switches go to the kernel (mis_report with an explicit clock, on a
/// managed scratch cgroup) and to the C# twin; every step must leave both with the same
/// violation count, level and kill flag.
/// </summary>
[Collection("kernel")]
public sealed class KernelDefconDifferentialTests(ITestOutputHelper output)
{
    private const ulong Ms = 1_000_000;

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(6)]
    public void Kernel_and_twin_follow_identical_trajectories(int seed)
    {
        var rng = new Random(seed);
        long t1 = rng.Next(1, 5), t2 = t1 + rng.Next(1, 6), t3 = t2 + rng.Next(1, 6), t4 = t3 + rng.Next(1, 8);
        var config = new DefconConfig
        {
            Thresholds = [t1, t2, t3, t4],
            DecayIntervalMs = seed % 3 == 0 ? 0 : rng.Next(5, 50),
            DecayAmount = rng.Next(1, 4),
            KillAtLevel1 = seed % 2 == 0,
        };
        output.WriteLine($"seed {seed}: {config}");

        using var enforcer = KernelTest.Open();
        using var cgroup = new ScratchCgroup();
        enforcer.Manage(cgroup.Path, learning: false, config: config);
        ulong now = 1_000_000_000 * Ms; // ~11 days: ahead of the real clock, the test owns time
        var twin = new DefconStateMachine(config, () => now);
        var trajectory = new List<int>();

        for (int step = 0; step < 400; step++)
        {
            int dice = rng.Next(100);
            (ulong Violations, int Level, bool Killed) kernel, expected;
            if (dice < 55)
            {
                var k = enforcer.ReportAt(new ViolationReport(cgroup.Id, (ViolationOp)rng.Next(1, 7), 1, 1, $"step-{step}"), now);
                var t = twin.RecordViolation();
                Assert.True((k.Violations, k.DefconBefore, k.DefconAfter) == (t.Violations, t.DefconBefore, t.DefconAfter),
                    $"seed {seed} step {step} (violation at {now / Ms} ms): kernel {k}, twin {t}");
            }
            else if (dice < 90)
            {
                now += (ulong)rng.Next(0, 4 * Math.Max(1, config.DecayIntervalMs)) * Ms + (ulong)rng.Next(0, 1000) * 1000;
            }
            else if (dice < 95)
            {
                bool learning = !twin.Learning;
                enforcer.SetLearningModeAt(cgroup.Id, learning, now);
                twin.Learning = learning;
            }
            var state = enforcer.StateAt(cgroup.Id, now)!;
            kernel = (state.Violations, state.Defcon, state.Killed);
            expected = (twin.Violations, twin.Level, twin.Killed);
            Assert.True(kernel == expected, $"seed {seed} step {step} at {now / Ms} ms: kernel {kernel}, twin {expected}");
            trajectory.Add(state.Defcon);
        }
        output.WriteLine("levels: " + string.Concat(trajectory));
        // The sequence must have exercised the machine, not idled at 5.
        Assert.Contains(trajectory, level => level <= 3);
    }
}
