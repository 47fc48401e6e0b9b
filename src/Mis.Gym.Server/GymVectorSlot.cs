using Grpc.Core;
using Mis.Gym;
using Mis.Gym.Vector;

namespace Mis.Gym.Server;

/// <summary>
/// A vector of a Gym server: N environments of one scenario in a <see cref="SyncVectorEnv{TObs, TAct}"/>,
/// whose next-step autoreset is Gymnasium's default (the in-process vector's semantics, not a second
/// copy of them). The sub-environments are stepped in turn on the calling thread: a sim step takes
/// microseconds, less than handing it to another thread would cost.
/// </summary>
public sealed class GymVectorSlot : GymSlot
{
    private readonly SyncVectorEnv<float[], int> _vector;
    // Set when a reset or step threw part-way: some sub-environments moved on, others did not, and
    // the autoreset bookkeeping no longer says which; only a VectorReset gives a known state again.
    private bool _broken;

    internal GymVectorSlot(string id, SyncVectorEnv<float[], int> vector, string scenario, string backend, TimeProvider clock)
        : base(id, scenario, backend, clock)
    {
        _vector = vector;
        ObservationSpace = GymMapping.ToProto(vector.SingleObservationSpace);
        ActionSpaceMessage = GymMapping.ToProto(vector.SingleActionSpace);
    }

    /// <summary>N, the number of sub-environments.</summary>
    internal int NumEnvs => _vector.NumEnvs;

    /// <summary>One sub-environment's action space (immutable: read without the gate).</summary>
    internal Mis.Gym.Spaces.Space<int> ActionSpace => _vector.SingleActionSpace;

    internal override Mis.Gym.V1.Space ObservationSpace { get; }

    internal override Mis.Gym.V1.Space ActionSpaceMessage { get; }

    /// <summary>Resets every sub-environment; sub-environment i with <paramref name="seed"/> + i when a seed is given.</summary>
    internal Task<VectorResetResult<float[]>> ResetAsync(int? seed, CancellationToken cancel) =>
        RunAsync(() =>
        {
            _broken = true;
            var result = _vector.Reset(seed);
            _broken = false;
            return result;
        }, "vector reset", cancel);

    /// <summary>One step of every sub-environment (or its autoreset); <paramref name="actions"/> are already checked.</summary>
    /// <exception cref="RpcException">FAILED_PRECONDITION after a reset or step that failed part-way.</exception>
    internal Task<VectorStepResult<float[]>> StepAsync(int[] actions, CancellationToken cancel) =>
        RunAsync(() =>
        {
            if (_broken)
                throw new RpcException(new Status(StatusCode.FailedPrecondition,
                    $"vector {Id}: an earlier VectorReset or VectorStep failed part-way, so its sub-environments are in no known state: call VectorReset"));
            _broken = true;
            var result = _vector.Step(actions);
            _broken = false;
            return result;
        }, "vector step", cancel);

    private protected override void CloseCore() => _vector.Close();
}
