using Mis.Gym.Checking;

namespace Mis.Gym.Tests;

public sealed class EnvCheckerTests
{
    [Fact]
    public void A_correct_env_passes_every_check()
    {
        var report = EnvChecker.Check(() => new ToyEnv());
        Assert.True(report.Ok, string.Join("\n", report.Results));
        Assert.Equal(["spaces", "step before reset", "reset", "reset seeding", "step", "determinism", "step after end", "close"],
            report.Results.Select(r => r.Name));
        Assert.Equal(8, report.Passed);
    }

    [Theory]
    [InlineData(Defect.SampleOutsideSpace, "spaces", "is not in it")]
    [InlineData(Defect.StepBeforeReset, "step before reset", "expected Step before Reset to throw")]
    [InlineData(Defect.ResetObservationOutsideSpace, "reset", "expected the reset observation in Box")]
    [InlineData(Defect.IgnoresSeed, "reset seeding", "expected Reset(seed: 42) to repeat")]
    [InlineData(Defect.StepObservationOutsideSpace, "step", "expected an observation in Box")]
    [InlineData(Defect.NaNReward, "step", "expected a finite reward, got NaN")]
    [InlineData(Defect.MutatesPreviousObservation, "step", "the previous observation changed")]
    [InlineData(Defect.Nondeterministic, "determinism", "expected the same seed and actions to repeat")]
    [InlineData(Defect.StepAfterEnd, "step after end", "expected Step after terminated without Reset to throw")]
    [InlineData(Defect.DoubleCloseThrows, "close", "expected Close twice to be safe")]
    public void Each_broken_env_fails_the_check_for_its_defect(Defect defect, string check, string detail)
    {
        var report = EnvChecker.Check(() => new ToyEnv(defect));
        var result = Assert.Single(report.Results, r => r.Name == check);
        Assert.Equal(CheckStatus.Failed, result.Status);
        Assert.Contains(detail, result.Detail);
        Assert.False(report.Ok);
    }

    [Fact]
    public void An_env_whose_episodes_never_end_within_the_limit_skips_the_step_after_end_check()
    {
        var report = EnvChecker.Check(() => new ToyEnv(length: 1_000_000, actionEnds: false), new EnvCheckOptions { MaxSteps = 20 });
        var result = Assert.Single(report.Results, r => r.Name == "step after end");
        Assert.Equal(CheckStatus.Skipped, result.Status);
        Assert.Contains("no episode ended within 20 steps", result.Detail);
        Assert.True(report.Ok);
    }

    [Fact]
    public void An_exception_inside_a_check_fails_that_check_only()
    {
        int made = 0;
        var report = EnvChecker.Check<float[], int>(() => made++ == 2 ? throw new IOException("boom") : new ToyEnv());
        var failed = Assert.Single(report.Results, r => r.Status == CheckStatus.Failed);
        Assert.Equal("reset", failed.Name);
        Assert.Contains("threw IOException: boom", failed.Detail);
    }
}
