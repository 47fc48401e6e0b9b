namespace Mis.Gym.Checking;

/// <summary>The outcome of one check.</summary>
public enum CheckStatus
{
    /// <summary>The environment meets the requirement.</summary>
    Passed,
    /// <summary>It does not; the detail says how.</summary>
    Failed,
    /// <summary>The check could not be exercised (e.g. no episode ended within the step limit); the detail says why.</summary>
    Skipped,
}

/// <summary>One check's result.</summary>
/// <param name="Name">The check (see <see cref="EnvChecker"/> for the list).</param>
/// <param name="Status">Passed, failed or skipped.</param>
/// <param name="Detail">Expected versus actual when failed; what was exercised otherwise.</param>
public sealed record CheckResult(string Name, CheckStatus Status, string Detail);

/// <summary>All checks of one environment.</summary>
/// <param name="Results">One result per check, in the order run.</param>
public sealed record EnvCheckReport(IReadOnlyList<CheckResult> Results)
{
    /// <summary>No check failed.</summary>
    public bool Ok => Failed == 0;

    /// <summary>Checks passed.</summary>
    public int Passed => Results.Count(r => r.Status == CheckStatus.Passed);

    /// <summary>Checks failed.</summary>
    public int Failed => Results.Count(r => r.Status == CheckStatus.Failed);

    /// <summary>Checks skipped.</summary>
    public int Skipped => Results.Count(r => r.Status == CheckStatus.Skipped);
}

/// <summary>Knobs of <see cref="EnvChecker.Check{TObs, TAct}"/>.</summary>
public sealed record EnvCheckOptions
{
    /// <summary>Seed of the resets and of the action sampler. Default 42.</summary>
    public int Seed { get; init; } = 42;

    /// <summary>Steps a rollout may take before the checker gives up waiting for the episode to end. Default 10,000.</summary>
    public int MaxSteps { get; init; } = 10_000;

    /// <summary>
    /// The environment is not expected to repeat a trajectory (Gymnasium's
    /// <c>EnvSpec.nondeterministic</c>): a real external program, whose timing is real. The
    /// determinism check is then skipped, saying why. Default false.
    /// </summary>
    public bool Nondeterministic { get; init; }

    /// <summary>Samples drawn from each space to check they are its elements. Default 100.</summary>
    public int SpaceSamples { get; init; } = 100;
}

/// <summary>
/// Checks that an environment keeps the <see cref="IEnv{TObs, TAct}"/> contract (Gymnasium's
/// <c>check_env</c>, stricter where C# can be). Every environment, simulated or real, must pass:
/// <list type="number">
/// <item><c>spaces</c>: both spaces exist and are well formed, and their samples are their elements.</item>
/// <item><c>step before reset</c>: throws <see cref="InvalidOperationException"/>.</item>
/// <item><c>reset</c>: returns an observation in the observation space and a non-null info.</item>
/// <item><c>reset seeding</c>: two resets with the same seed return equal observations.</item>
/// <item><c>step</c>: every step returns an observation in the space (a fresh value, not the previous
/// one mutated), a finite reward and a non-null info.</item>
/// <item><c>determinism</c>: the same seed and actions give the same trajectory (observations,
/// rewards, terminated, truncated).</item>
/// <item><c>step after end</c>: a step after terminated or truncated without a reset throws
/// <see cref="InvalidOperationException"/>, and a reset makes the environment usable again.</item>
/// <item><c>close</c>: closing twice (and disposing after) does not throw.</item>
/// </list>
/// Each check builds a fresh environment from the factory and closes it; an exception a check did
/// not expect fails that check, never the whole run.
/// </summary>
public static class EnvChecker
{
    /// <summary>Runs every check on environments made by <paramref name="makeEnv"/>.</summary>
    /// <typeparam name="TObs">Observation type.</typeparam>
    /// <typeparam name="TAct">Action type.</typeparam>
    /// <param name="makeEnv">Makes a fresh, un-reset environment each call.</param>
    /// <param name="options">Seeds and limits; null for the defaults.</param>
    /// <returns>One result per check.</returns>
    public static EnvCheckReport Check<TObs, TAct>(Func<IEnv<TObs, TAct>> makeEnv, EnvCheckOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(makeEnv);
        var o = options ?? new EnvCheckOptions();
        var checks = new (string Name, Func<IEnv<TObs, TAct>, EnvCheckOptions, CheckResult> Run)[]
        {
            ("spaces", Spaces),
            ("step before reset", StepBeforeReset),
            ("reset", ResetReturns),
            ("reset seeding", ResetSeeding),
            ("step", StepReturns),
            ("determinism", Determinism),
            ("step after end", StepAfterEnd),
        };
        var results = new List<CheckResult>();
        foreach (var (name, run) in checks)
        {
            if (name == "determinism" && o.Nondeterministic)
            {
                results.Add(new CheckResult(name, CheckStatus.Skipped, "the environment is declared nondeterministic (a real program's timing)"));
                continue;
            }
            IEnv<TObs, TAct>? env = null;
            try
            {
                env = makeEnv();
                results.Add(run(env, o) with { Name = name });
            }
            catch (Exception e)
            {
                results.Add(Fail(name, $"threw {e.GetType().Name}: {e.Message}"));
            }
            finally
            {
                try
                {
                    env?.Close();
                }
                catch (Exception)
                {
                    // Reported by the close check below, not blamed on this one.
                }
            }
        }
        results.Add(Closes(makeEnv));
        return new EnvCheckReport(results);
    }

    private static CheckResult Pass(string detail) => new("", CheckStatus.Passed, detail);

    private static CheckResult Fail(string name, string detail) => new(name, CheckStatus.Failed, detail);

    private static CheckResult Fail(string detail) => Fail("", detail);

    private static CheckResult Spaces<TObs, TAct>(IEnv<TObs, TAct> env, EnvCheckOptions o)
    {
        if (env.ObservationSpace is not { } obsSpace || env.ActionSpace is not { } actSpace)
            return Fail("expected non-null ObservationSpace and ActionSpace");
        if (obsSpace.Validate() is { } obsProblem)
            return Fail($"observation space {obsSpace}: {obsProblem}");
        if (actSpace.Validate() is { } actProblem)
            return Fail($"action space {actSpace}: {actProblem}");
        var rng = new Random(o.Seed);
        for (int i = 0; i < o.SpaceSamples; i++)
        {
            var obs = obsSpace.Sample(rng);
            if (!obsSpace.Contains(obs))
                return Fail($"observation space {obsSpace}: its sample {obsSpace.Format(obs)} is not in it");
            var act = actSpace.Sample(rng);
            if (!actSpace.Contains(act))
                return Fail($"action space {actSpace}: its sample {actSpace.Format(act)} is not in it");
        }
        return Pass($"observation {obsSpace}; action {actSpace}");
    }

    private static CheckResult StepBeforeReset<TObs, TAct>(IEnv<TObs, TAct> env, EnvCheckOptions o)
    {
        try
        {
            env.Step(env.ActionSpace.Sample(new Random(o.Seed)));
        }
        catch (InvalidOperationException)
        {
            return Pass("throws InvalidOperationException");
        }
        return Fail("expected Step before Reset to throw InvalidOperationException; it returned a result");
    }

    private static CheckResult ResetReturns<TObs, TAct>(IEnv<TObs, TAct> env, EnvCheckOptions o)
    {
        var (obs, info) = env.Reset(o.Seed);
        if (info is null)
            return Fail("expected a non-null info from Reset, got null");
        return env.ObservationSpace.Contains(obs)
            ? Pass($"first observation {env.ObservationSpace.Format(obs)}")
            : Fail($"expected the reset observation in {env.ObservationSpace}, got {env.ObservationSpace.Format(obs)}");
    }

    private static CheckResult ResetSeeding<TObs, TAct>(IEnv<TObs, TAct> env, EnvCheckOptions o)
    {
        var first = env.Reset(o.Seed).Observation;
        env.Step(env.ActionSpace.Sample(new Random(o.Seed)));
        var second = env.Reset(o.Seed).Observation;
        return env.ObservationSpace.ValuesEqual(first, second)
            ? Pass($"Reset(seed: {o.Seed}) twice gives the same observation")
            : Fail($"expected Reset(seed: {o.Seed}) to repeat {env.ObservationSpace.Format(first)}, got {env.ObservationSpace.Format(second)}");
    }

    private static CheckResult StepReturns<TObs, TAct>(IEnv<TObs, TAct> env, EnvCheckOptions o)
    {
        var space = env.ObservationSpace;
        var previous = env.Reset(o.Seed).Observation;
        var snapshot = Copy(previous);
        var rng = new Random(o.Seed);
        int steps = 0;
        while (steps < o.MaxSteps)
        {
            var result = env.Step(env.ActionSpace.Sample(rng));
            steps++;
            if (!space.Contains(result.Observation))
                return Fail($"step {steps}: expected an observation in {space}, got {space.Format(result.Observation)}");
            if (!double.IsFinite(result.Reward))
                return Fail($"step {steps}: expected a finite reward, got {result.Reward}");
            if (result.Info is null)
                return Fail($"step {steps}: expected a non-null info, got null");
            if (!space.ValuesEqual(previous, snapshot))
                return Fail($"step {steps}: the previous observation changed after it was returned (was {space.Format(snapshot)}, now {space.Format(previous)}); return a fresh value each step");
            if (result.Done)
                return Pass($"{steps} steps until the episode ended");
            previous = result.Observation;
            snapshot = Copy(previous);
        }
        return Pass($"{steps} steps (the episode did not end)");
    }

    private static CheckResult Determinism<TObs, TAct>(IEnv<TObs, TAct> env, EnvCheckOptions o)
    {
        var a = Rollout(env, o);
        var b = Rollout(env, o);
        var space = env.ObservationSpace;
        for (int t = 0; t < Math.Min(a.Count, b.Count); t++)
        {
            var (obsA, rA, termA, truncA) = a[t];
            var (obsB, rB, termB, truncB) = b[t];
            if (!space.ValuesEqual(obsA, obsB) || !rA.Equals(rB) || termA != termB || truncA != truncB)
            {
                return Fail($"step {t}: expected the same seed and actions to repeat (obs {space.Format(obsA)}, reward {rA}, terminated {termA}, truncated {truncA}), " +
                            $"got (obs {space.Format(obsB)}, reward {rB}, terminated {termB}, truncated {truncB})");
            }
        }
        return a.Count == b.Count
            ? Pass($"{a.Count - 1} steps repeated exactly with seed {o.Seed}")
            : Fail($"expected two rollouts with seed {o.Seed} to have the same length, got {a.Count - 1} and {b.Count - 1} steps");
    }

    private static CheckResult StepAfterEnd<TObs, TAct>(IEnv<TObs, TAct> env, EnvCheckOptions o)
    {
        var trajectory = Rollout(env, o);
        var (_, _, terminated, truncated) = trajectory[^1];
        if (!terminated && !truncated)
            return new CheckResult("", CheckStatus.Skipped, $"no episode ended within {o.MaxSteps} steps");
        var rng = new Random(o.Seed);
        try
        {
            env.Step(env.ActionSpace.Sample(rng));
            return Fail($"expected Step after {(terminated ? "terminated" : "truncated")} without Reset to throw InvalidOperationException; it returned a result");
        }
        catch (InvalidOperationException)
        {
        }
        env.Reset();
        env.Step(env.ActionSpace.Sample(rng));
        return Pass($"throws after {(terminated ? "terminated" : "truncated")} at step {trajectory.Count - 1}; usable again after Reset");
    }

    private static CheckResult Closes<TObs, TAct>(Func<IEnv<TObs, TAct>> makeEnv)
    {
        try
        {
            var env = makeEnv();
            env.Reset();
            env.Close();
            env.Close();
            env.Dispose();
            return new CheckResult("close", CheckStatus.Passed, "Close twice and Dispose after it do not throw");
        }
        catch (Exception e)
        {
            return Fail("close", $"expected Close twice to be safe, got {e.GetType().Name}: {e.Message}");
        }
    }

    // Observations, rewards and flags from Reset(seed) until the episode ends or MaxSteps; entry 0 is the reset.
    private static List<(TObs Obs, double Reward, bool Terminated, bool Truncated)> Rollout<TObs, TAct>(IEnv<TObs, TAct> env, EnvCheckOptions o)
    {
        var rng = new Random(o.Seed);
        var steps = new List<(TObs, double, bool, bool)> { (Copy(env.Reset(o.Seed).Observation), 0.0, false, false) };
        for (int t = 0; t < o.MaxSteps; t++)
        {
            var r = env.Step(env.ActionSpace.Sample(rng));
            steps.Add((Copy(r.Observation), r.Reward, r.Terminated, r.Truncated));
            if (r.Done)
                break;
        }
        return steps;
    }

    // A snapshot that a misbehaving environment cannot mutate behind the checker's back.
    private static T Copy<T>(T value) => value switch
    {
        float[] f => (T)(object)f.Clone(),
        int[] i => (T)(object)i.Clone(),
        _ => value,
    };
}
