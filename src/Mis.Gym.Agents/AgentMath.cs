namespace Mis.Gym.Agents;

/// <summary>Small pieces of math the agents share, each kept apart so a test can pin it down.</summary>
public static class AgentMath
{
    /// <summary>
    /// CleanRL's linear schedule: <paramref name="start"/> at step 0, moving linearly to
    /// <paramref name="end"/> at step <paramref name="duration"/>, and <paramref name="end"/> from then on
    /// (a duration of 0 is <paramref name="end"/> at once).
    /// </summary>
    internal static double LinearSchedule(double start, double end, long duration, long step) =>
        duration <= 0 || step >= duration ? end : start + (end - start) * step / duration;

    /// <summary>
    /// <c>sign(x) · ln(1 + |x|)</c>: squashes the unbounded elements of a MIS observation (violations,
    /// milliseconds) into a range a small network handles, keeps 0 at 0 and the order of values,
    /// and needs no running statistics, so it is the same function at every step of every run.
    /// </summary>
    internal static float Symlog(float x) => MathF.CopySign(MathF.Log(1f + MathF.Abs(x)), x);

    /// <summary>Writes <see cref="Symlog"/> of every element of <paramref name="observation"/> into <paramref name="into"/>.</summary>
    internal static void SymlogAll(ReadOnlySpan<float> observation, Span<float> into)
    {
        for (int i = 0; i < observation.Length; i++)
            into[i] = Symlog(observation[i]);
    }

    /// <summary>Index of the largest value; the lowest index among equals, so greedy choices are repeatable.</summary>
    internal static int Argmax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
        {
            if (values[i] > values[best])
                best = i;
        }
        return best;
    }

    /// <summary>Index of the largest value; the lowest index among equals.</summary>
    internal static int Argmax(ReadOnlySpan<double> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
        {
            if (values[i] > values[best])
                best = i;
        }
        return best;
    }

    /// <summary>Checks the sizes every agent needs.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A size below 1.</exception>
    internal static void CheckSizes(int observationSize, int actionCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(observationSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(actionCount, 1);
    }

    /// <summary>Checks an observation's length.</summary>
    /// <exception cref="ArgumentException">The observation does not have <paramref name="expected"/> elements.</exception>
    internal static void CheckObservation(float[] observation, int expected)
    {
        ArgumentNullException.ThrowIfNull(observation);
        if (observation.Length != expected)
            throw new ArgumentException($"expected an observation of {expected} elements, got {observation.Length}", nameof(observation));
    }
}
