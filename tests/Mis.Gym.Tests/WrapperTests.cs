using Microsoft.Extensions.Time.Testing;
using Mis.Gym.Checking;
using Mis.Gym.Spaces;
using Mis.Gym.Wrappers;

namespace Mis.Gym.Tests;

public sealed class WrapperTests
{
    [Fact]
    public void TimeLimit_truncates_at_the_budget_and_refuses_a_step_after_it()
    {
        var env = new TimeLimit<float[], int>(new ToyEnv(length: 100), maxEpisodeSteps: 3);
        env.Reset(seed: 1);
        Assert.False(env.Step(0).Truncated);
        Assert.False(env.Step(0).Truncated);
        var last = env.Step(0);
        Assert.True(last.Truncated);
        Assert.False(last.Terminated);
        Assert.Contains("after the episode ended", Assert.Throws<InvalidOperationException>(() => env.Step(0)).Message);
        env.Reset();
        Assert.Equal(0, env.ElapsedSteps);
        Assert.False(env.Step(0).Truncated);
    }

    [Fact]
    public void TimeLimit_reports_both_flags_when_the_last_step_also_terminates()
    {
        var env = new TimeLimit<float[], int>(new ToyEnv(length: 2), maxEpisodeSteps: 2);
        env.Reset(seed: 1);
        env.Step(0);
        var last = env.Step(0);
        Assert.True(last.Terminated);
        Assert.True(last.Truncated);
    }

    [Fact]
    public void ScaleReward_multiplies_the_reward()
    {
        var plain = new ToyEnv();
        var scaled = new ScaleReward<float[], int>(new ToyEnv(), 0.5);
        plain.Reset(seed: 3);
        scaled.Reset(seed: 3);
        for (int i = 0; i < 4; i++)
            Assert.Equal(plain.Step(0).Reward * 0.5, scaled.Step(0).Reward);
    }

    [Fact]
    public void NormalizeReward_divides_by_the_running_std_of_the_discounted_return()
    {
        var plain = new ToyEnv(length: 50);
        var normalized = new NormalizeReward<float[], int>(new ToyEnv(length: 50), gamma: 0.9);
        plain.Reset(seed: 4);
        normalized.Reset(seed: 4);
        var stats = new RunningMeanStd(1);
        double g = 0;
        for (int i = 0; i < 20; i++)
        {
            var r = plain.Step(0);
            g = g * 0.9 + r.Reward;
            stats.Update([g]);
            Assert.Equal(r.Reward / Math.Sqrt(stats.Var[0] + 1e-8), normalized.Step(0).Reward, 12);
        }
    }

    [Fact]
    public void RunningMeanStd_equals_the_closed_form_with_its_initial_pseudo_count()
    {
        double[] xs = [3, -1, 4, 1, -5, 9, 2, 6];
        var stats = new RunningMeanStd(1);
        foreach (double x in xs)
            stats.Update([x]);
        const double eps = 1e-4;
        double n = xs.Length + eps;
        double mean = xs.Sum() / n;
        double var = (eps * 1.0 + eps * mean * mean + xs.Sum(x => (x - mean) * (x - mean))) / n;
        Assert.Equal(mean, stats.Mean[0], 12);
        Assert.Equal(var, stats.Var[0], 12);
        Assert.Equal(n, stats.Count, 12);
    }

    [Fact]
    public void NormalizeObservation_uses_the_statistics_including_the_current_observation()
    {
        var inner = new ToyEnv(length: 100);
        var env = new NormalizeObservation<int>(new ToyEnv(length: 100));
        var stats = new RunningMeanStd(2);
        var raw = inner.Reset(seed: 8).Observation;
        var got = env.Reset(seed: 8).Observation;
        for (int t = 0; t < 10; t++)
        {
            stats.Update(raw);
            for (int i = 0; i < 2; i++)
                Assert.Equal((float)((raw[i] - stats.Mean[i]) / Math.Sqrt(stats.Var[i] + 1e-8)), got[i]);
            raw = inner.Step(0).Observation;
            got = env.Step(0).Observation;
        }
        Assert.True(env.ObservationSpace is Box { } box && float.IsNegativeInfinity(box.Low[0]));
    }

    [Fact]
    public void RecordEpisodeStatistics_adds_return_length_and_time_at_the_end_of_an_episode()
    {
        var clock = new FakeTimeProvider();
        var env = new RecordEpisodeStatistics<float[], int>(new ToyEnv(length: 3), bufferLength: 2, clock);
        for (int episode = 0; episode < 3; episode++)
        {
            env.Reset(seed: episode);
            double sum = 0;
            StepResult<float[]> r;
            do
            {
                clock.Advance(TimeSpan.FromMilliseconds(10));
                r = env.Step(0);
                sum += r.Reward;
                Assert.Equal(r.Done, r.Info.ContainsKey("episode"));
            }
            while (!r.Done);
            var stats = r.Info.Get<EpisodeStatistics>("episode");
            Assert.Equal(sum, stats.Return, 12);
            Assert.Equal(3, stats.Length);
            Assert.Equal(TimeSpan.FromMilliseconds(30), stats.Time);
            Assert.Equal(3, r.Info.Get<int>("t"));
        }
        Assert.Equal(2, env.ReturnQueue.Count);
        Assert.Equal([3, 3], env.LengthQueue);
    }

    [Fact]
    public void Wrapped_envs_pass_the_checker()
    {
        // The normalising wrappers are left out on purpose: their statistics carry over from one
        // episode to the next (that is their job), so a reset with the same seed cannot repeat.
        static IEnv<float[], int> Make() =>
            new RecordEpisodeStatistics<float[], int>(
                new ScaleReward<float[], int>(
                    new TimeLimit<float[], int>(new ToyEnv(length: 50), 7), 2.0));
        var report = EnvChecker.Check(Make);
        Assert.True(report.Ok, string.Join("\n", report.Results));
    }
}
