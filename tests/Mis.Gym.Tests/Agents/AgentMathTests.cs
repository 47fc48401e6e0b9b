using Mis.Gym.Agents;
using static TorchSharp.torch;

namespace Mis.Gym.Tests.Agents;

/// <summary>The math the agents rest on, pinned down apart from any learning.</summary>
public sealed class AgentMathTests
{
    [Fact]
    public void The_linear_schedule_runs_from_start_to_end_and_stays_there()
    {
        Assert.Equal(1.0, AgentMath.LinearSchedule(1.0, 0.05, 100, 0));
        Assert.Equal(0.525, AgentMath.LinearSchedule(1.0, 0.05, 100, 50), 12);
        Assert.Equal(0.05, AgentMath.LinearSchedule(1.0, 0.05, 100, 100));
        Assert.Equal(0.05, AgentMath.LinearSchedule(1.0, 0.05, 100, 1_000_000));
        Assert.Equal(0.05, AgentMath.LinearSchedule(1.0, 0.05, 0, 0));
    }

    [Fact]
    public void Gae_bootstraps_through_truncation_but_not_termination_and_stops_at_episode_ends()
    {
        // Steps 0-1: an episode that terminates. Step 2: truncated (next state worth 10).
        // Step 3: the rollout's last step, mid-episode (next state worth 4).
        float[] rewards = [1, 2, 3, 4], values = [0.5f, 1, 2, 3], nextValues = [1, 100, 10, 4];
        bool[] terminated = [false, true, false, false], done = [false, true, true, false];
        var advantages = new float[4];
        Ppo.Gae(rewards, values, nextValues, terminated, done, gamma: 0.9, lambda: 0.5, advantages);

        double d3 = 4 + 0.9 * 4 - 3;                   // no later step in the rollout
        double d2 = 3 + 0.9 * 10 - 2;                  // truncated: bootstraps, but the chain stops
        double d1 = 2 + 0 - 1;                         // terminated: V(s′) of 100 ignored
        double d0 = 1 + 0.9 * 1 - 0.5;
        Assert.Equal(d3, advantages[3], 5);
        Assert.Equal(d2, advantages[2], 5);
        Assert.Equal(d1, advantages[1], 5);
        Assert.Equal(d0 + 0.9 * 0.5 * d1, advantages[0], 5);
    }

    [Fact]
    public void Observation_bins_are_exact_for_small_values_and_logarithmic_beyond()
    {
        Assert.Equal([0, 1, 1, 3, 5, 16, -16], new[] { 0f, 1f, 0.6f, 3f, 4.5f, 16f, -16f }.Select(x => TabularQ.Bin(x, 16, 2)));
        // Beyond 16: two bins per doubling, the same bin within one half-octave.
        Assert.Equal(17, TabularQ.Bin(20f, 16, 2));
        Assert.Equal(18, TabularQ.Bin(30f, 16, 2));
        Assert.Equal(18, TabularQ.Bin(32f, 16, 2));
        Assert.Equal(19, TabularQ.Bin(40f, 16, 2));
        Assert.Equal(-19, TabularQ.Bin(-40f, 16, 2));
        Assert.Equal(0, TabularQ.Bin(float.NaN, 16, 2));
        Assert.Equal(int.MaxValue, TabularQ.Bin(float.PositiveInfinity, 16, 2));
    }

    [Fact]
    public void Symlog_keeps_zero_sign_and_order()
    {
        Assert.Equal(0f, AgentMath.Symlog(0f));
        Assert.Equal(MathF.Log(2f), AgentMath.Symlog(1f));
        Assert.Equal(-AgentMath.Symlog(5f), AgentMath.Symlog(-5f));
        Assert.True(AgentMath.Symlog(1000f) > AgentMath.Symlog(999f));
    }

    [Theory]
    [InlineData(4, 10)]
    [InlineData(10, 4)]
    public void Orthogonal_init_gives_orthonormal_rows_or_columns_times_the_gain(int rows, int cols)
    {
        var w = Mlp.Orthogonal(rows, cols, 2.0, new Random(1));
        int n = Math.Min(rows, cols);
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double dot = 0;
                for (int k = 0; k < Math.Max(rows, cols); k++)
                    dot += rows <= cols ? w[i * cols + k] * w[j * cols + k] : w[k * cols + i] * w[k * cols + j];
                Assert.Equal(i == j ? 4.0 : 0.0, dot, 4);
            }
        }
        Assert.Equal(w, Mlp.Orthogonal(rows, cols, 2.0, new Random(1)));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void The_managed_mirror_computes_what_the_network_computes(bool tanh)
    {
        using var net = new Mlp("net", [6, 16, 16, 3], tanh ? Activation.Tanh : Activation.Relu, new Random(2), outputGain: 1.0);
        var mirror = new MlpMirror(net);
        var rng = new Random(3);
        for (int trial = 0; trial < 10; trial++)
        {
            var x = Enumerable.Range(0, 6).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var expected = net.call(tensor(x, [1, 6])).data<float>().ToArray();
            var actual = mirror.Forward(x).ToArray();
            for (int i = 0; i < 3; i++)
                Assert.Equal(expected[i], actual[i], 4);
        }
    }
}
