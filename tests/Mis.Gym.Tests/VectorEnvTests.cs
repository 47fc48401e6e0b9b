using Mis.Gym.Vector;

namespace Mis.Gym.Tests;

public sealed class VectorEnvTests
{
    private static Func<IEnv<float[], int>>[] Toys(params int[] lengths) =>
        lengths.Select(l => (Func<IEnv<float[], int>>)(() => new ToyEnv(length: l, actionEnds: false))).ToArray();

    public static TheoryData<bool> Modes => [false, true];

    private static VectorEnv<float[], int> Make(bool async, IReadOnlyList<Func<IEnv<float[], int>>> factories) =>
        async ? new AsyncVectorEnv<float[], int>(factories) : new SyncVectorEnv<float[], int>(factories);

    [Theory]
    [MemberData(nameof(Modes))]
    public void Next_step_autoreset_returns_the_final_step_then_the_reset_with_zero_reward_and_no_flags(bool async)
    {
        using var vec = Make(async, Toys(2, 3));
        var toys = vec.Envs.Cast<ToyEnv>().ToArray();
        vec.Reset(seed: 10);
        int[] actions = [0, 0];

        var s1 = vec.Step(actions);
        Assert.Equal([false, false], s1.Terminated);
        var s2 = vec.Step(actions);
        Assert.Equal([true, false], s2.Terminated);           // sub-env 0 ends here: its own last step
        Assert.Equal(1f, s2.Observations[0][0]);               // t / length = 2 / 2: the final observation
        Assert.NotEqual(0.0, s2.Rewards[0]);

        var s3 = vec.Step(actions);                            // sub-env 0 resets, its action ignored
        Assert.Equal(2, toys[0].ResetCount);
        Assert.Equal(2, toys[0].StepCount);
        Assert.Equal(0f, s3.Observations[0][0]);               // the reset observation
        Assert.Equal(0.0, s3.Rewards[0]);
        Assert.False(s3.Terminated[0]);
        Assert.False(s3.Truncated[0]);
        Assert.Equal(0, s3.Infos[0].Get<int>("t"));            // the reset's info
        Assert.True(s3.Terminated[1]);                         // sub-env 1 ends on its third step meanwhile

        var s4 = vec.Step(actions);
        Assert.Equal(3, toys[0].StepCount);                    // stepping again
        Assert.Equal(0.5f, s4.Observations[0][0]);
        Assert.Equal(0.0, s4.Rewards[1]);                      // and sub-env 1 autoresets now
        Assert.Equal(2, toys[1].ResetCount);
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public void Reset_with_a_seed_seeds_sub_env_i_with_seed_plus_i(bool async)
    {
        using var vec = Make(async, Toys(5, 5, 5));
        var reset = vec.Reset(seed: 100);
        for (int i = 0; i < 3; i++)
        {
            using var single = new ToyEnv(length: 5);
            Assert.Equal(single.Reset(100 + i).Observation, reset.Observations[i]);
        }
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public void Reset_clears_a_pending_autoreset(bool async)
    {
        using var vec = Make(async, Toys(1));
        vec.Reset(seed: 1);
        Assert.True(vec.Step([0]).Terminated[0]);
        vec.Reset(seed: 2);
        var next = vec.Step([0]);
        Assert.True(next.Terminated[0]);                       // a real step, not an autoreset
        Assert.NotEqual(0.0, next.Rewards[0]);
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public void Wrong_action_count_and_bad_actions_are_errors_and_close_is_idempotent(bool async)
    {
        var vec = Make(async, Toys(3, 3));
        vec.Reset(seed: 1);
        Assert.Contains("expected 2 actions", Assert.Throws<ArgumentException>(() => vec.Step([0])).Message);
        vec.Close();
        vec.Close();
        vec.Dispose();
        Assert.Throws<ObjectDisposedException>(() => vec.Step([0, 0]));
    }

    [Fact]
    public void Async_rethrows_a_sub_env_exception_with_its_type()
    {
        using var vec = new AsyncVectorEnv<float[], int>(Toys(3, 3));
        Assert.Throws<InvalidOperationException>(() => vec.Step([0, 0]));  // no reset yet
        vec.Reset(seed: 1);
        vec.Step([0, 0]);
    }
}
