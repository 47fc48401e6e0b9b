namespace Mis.Gym.Wrappers;

/// <summary>What <see cref="RecordEpisodeStatistics{TObs, TAct}"/> puts in <c>info["episode"]</c>.</summary>
/// <param name="Return">Sum of the episode's rewards (Gymnasium's <c>"r"</c>).</param>
/// <param name="Length">Number of steps (<c>"l"</c>).</param>
/// <param name="Time">Wall time from reset to the last step (<c>"t"</c>).</param>
public sealed record EpisodeStatistics(double Return, int Length, TimeSpan Time);

/// <summary>
/// Adds <c>info["episode"]</c> (an <see cref="EpisodeStatistics"/>) to the step that ends an
/// episode, terminated or truncated (Gymnasium's <c>RecordEpisodeStatistics</c>), and keeps the
/// last <see cref="BufferLength"/> returns and lengths. Wrap it outside <see cref="TimeLimit{TObs, TAct}"/>
/// so that truncated episodes are recorded too.
/// </summary>
/// <typeparam name="TObs">Observation type.</typeparam>
/// <typeparam name="TAct">Action type.</typeparam>
public sealed class RecordEpisodeStatistics<TObs, TAct> : Wrapper<TObs, TAct>
{
    /// <summary>The info key the statistics are written under.</summary>
    public const string Key = "episode";

    private readonly TimeProvider _clock;
    private readonly Queue<double> _returns = new();
    private readonly Queue<int> _lengths = new();
    private long _startTimestamp;
    private double _return;
    private int _length;

    /// <summary>Wraps <paramref name="env"/>.</summary>
    /// <param name="env">The environment.</param>
    /// <param name="bufferLength">How many recent episodes <see cref="ReturnQueue"/> and <see cref="LengthQueue"/> keep.</param>
    /// <param name="clock">Time source for the episode time (tests inject a fake one).</param>
    public RecordEpisodeStatistics(IEnv<TObs, TAct> env, int bufferLength = 100, TimeProvider? clock = null)
        : base(env)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bufferLength, 1);
        BufferLength = bufferLength;
        _clock = clock ?? TimeProvider.System;
    }

    /// <summary>How many recent episodes the queues keep.</summary>
    public int BufferLength { get; }

    /// <summary>Returns of the most recent episodes, oldest first.</summary>
    public IReadOnlyCollection<double> ReturnQueue => _returns;

    /// <summary>Lengths of the most recent episodes, oldest first.</summary>
    public IReadOnlyCollection<int> LengthQueue => _lengths;

    /// <inheritdoc />
    protected override ResetResult<TObs> ResetCore(int? seed, IReadOnlyDictionary<string, object>? options)
    {
        var result = Env.Reset(seed, options);
        _return = 0;
        _length = 0;
        _startTimestamp = _clock.GetTimestamp();
        return result;
    }

    /// <inheritdoc />
    protected override StepResult<TObs> StepCore(TAct action)
    {
        var result = Env.Step(action);
        _return += result.Reward;
        _length++;
        if (!result.Done)
            return result;
        if (result.Info.ContainsKey(Key))
            throw new InvalidOperationException($"info already has \"{Key}\": is {nameof(RecordEpisodeStatistics<TObs, TAct>)} applied twice?");
        var stats = new EpisodeStatistics(_return, _length, _clock.GetElapsedTime(_startTimestamp));
        Enqueue(_returns, stats.Return);
        Enqueue(_lengths, stats.Length);
        return result with { Info = result.Info.With(Key, stats) };
    }

    private void Enqueue<T>(Queue<T> queue, T value)
    {
        queue.Enqueue(value);
        if (queue.Count > BufferLength)
            queue.Dequeue();
    }
}
