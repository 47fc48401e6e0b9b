using System.Diagnostics;

namespace Mis.Gym.Tests.Agents;

/// <summary>
/// The neural agents train while another thread collects garbage, as in a busy process: a TorchSharp
/// scalar made implicitly (from a double, the alpha of tensor + tensor, the 2 of square()) could be
/// finalized while libtorch read it ("Exception raised from toFloat at c10/core/Scalar.h").
/// </summary>
public sealed class AgentGcTests
{
    [Theory]
    [InlineData("ppo")]
    [InlineData("dqn")]
    public void Training_survives_garbage_collections_on_another_thread(string algorithm)
    {
        var clock = Stopwatch.StartNew();
        var duration = TimeSpan.FromSeconds(10);
        var gc = new Thread(() =>
        {
            while (clock.Elapsed < duration)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
            }
        });
        gc.Start();
        var errors = new List<string>();
        int runs = 0;
        while (clock.Elapsed < duration)
        {
            try
            {
                using var env = AgentRuns.MakeTiny();
                using var agent = AgentRuns.Make(algorithm, runs++, env);
                AgentRuns.Train(agent, env, 60);
            }
            catch (Exception e)
            {
                errors.Add($"{e.GetType().Name}: {e.Message.Split('\n')[0]} at {e.StackTrace?.Split('\n').Skip(1).FirstOrDefault()?.Trim()}");
            }
        }
        gc.Join();
        Assert.True(errors.Count == 0, $"{errors.Count} of {runs} training runs failed; first: {errors.FirstOrDefault()}");
    }
}
