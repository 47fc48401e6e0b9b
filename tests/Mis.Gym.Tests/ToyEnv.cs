using Mis.Gym.Spaces;

namespace Mis.Gym.Tests;

/// <summary>One way to break the env contract; each is caught by one checker check.</summary>
public enum Defect
{
    None,
    SampleOutsideSpace,
    StepBeforeReset,
    ResetObservationOutsideSpace,
    IgnoresSeed,
    StepObservationOutsideSpace,
    NaNReward,
    MutatesPreviousObservation,
    Nondeterministic,
    StepAfterEnd,
    DoubleCloseThrows,
}

/// <summary>
/// A small env written straight against <see cref="IEnv{TObs, TAct}"/> (not the Env base class, which
/// would enforce the contract for it), so each defect can be planted. Observation [t / length, noise],
/// reward = the noise; action 1 ends the episode early (terminated) when actionEnds, otherwise it ends at step length.
/// </summary>
internal sealed class ToyEnv(Defect defect = Defect.None, int length = 5, bool actionEnds = true) : IEnv<float[], int>
{
    private static readonly Random Shared = new();
    private Random _rng = new(0);
    private float[] _obs = [0f, 0f];
    private int _t;
    private bool _running;
    private bool _closed;

    public int ResetCount { get; private set; }

    public int StepCount { get; private set; }

    public Space<float[]> ObservationSpace { get; } = defect == Defect.SampleOutsideSpace ? new LyingBox() : Box.Uniform(0f, 1f, 2);

    public Space<int> ActionSpace { get; } = new Discrete(2);

    public ResetResult<float[]> Reset(int? seed = null, IReadOnlyDictionary<string, object>? options = null)
    {
        if (seed is { } s && defect != Defect.IgnoresSeed)
            _rng = new Random(s);
        else if (defect == Defect.IgnoresSeed)
            _rng = new Random();
        _t = 0;
        _running = true;
        ResetCount++;
        _obs = [0f, (float)_rng.NextDouble()];
        if (defect == Defect.ResetObservationOutsideSpace)
            _obs[0] = -1f;
        return new ResetResult<float[]>(_obs, Info.Of(("t", 0)));
    }

    public StepResult<float[]> Step(int action)
    {
        if (!_running && defect is not (Defect.StepBeforeReset or Defect.StepAfterEnd))
            throw new InvalidOperationException("no episode running");
        StepCount++;
        _t++;
        double noise = defect == Defect.Nondeterministic ? Shared.NextDouble() : _rng.NextDouble();
        var obs = defect == Defect.MutatesPreviousObservation ? _obs : new float[2];
        obs[0] = Math.Min(1f, (float)_t / length);
        obs[1] = (float)noise;
        if (defect == Defect.StepObservationOutsideSpace)
            obs[1] = 2f;
        _obs = obs;
        bool terminated = (actionEnds && action == 1) || _t >= length;
        _running = !terminated;
        return new StepResult<float[]>(obs, defect == Defect.NaNReward ? double.NaN : noise, terminated, false, Info.Of(("t", _t)));
    }

    public void Close()
    {
        if (_closed && defect == Defect.DoubleCloseThrows)
            throw new ObjectDisposedException(nameof(ToyEnv));
        _closed = true;
    }

    public void Dispose() => Close();

    /// <summary>A box whose samples fall outside it.</summary>
    private sealed class LyingBox : Space<float[]>
    {
        public override IReadOnlyList<int> Shape => [2];

        public override float[] Sample(Random rng) => [5f, 5f];

        public override bool Contains(float[] value) => value is { Length: 2 } && value.All(v => v is >= 0f and <= 1f);

        public override bool ValuesEqual(float[] a, float[] b) => a.SequenceEqual(b);
    }
}
