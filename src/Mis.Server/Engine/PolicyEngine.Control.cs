using System.Diagnostics;
using Mis.Enforcer.Defcon;
using Mis.Enforcer.Events;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Policy;
using Mis.Server.Observability;

namespace Mis.Server.Engine;

/// <summary>What KillProcess did.</summary>
/// <param name="AlreadyExited">The workload had ended before the call; nothing was done.</param>
/// <param name="SigkillNeeded">Some process had to be SIGKILLed (always, for an immediate kill).</param>
/// <param name="Elapsed">From the call to the empty cgroup.</param>
public sealed record KillOutcome(bool AlreadyExited, bool SigkillNeeded, TimeSpan Elapsed);

/// <summary>What SetDefcon did.</summary>
public sealed record DefconOutcome(int Previous, int Defcon, ulong Violations, bool Killed);

// Requests on one managed cgroup. Each looks the workload up in this enforcer's own table first:
// an id that is not there (a host process's cgroup, another enforcer's, a PID passed by mistake)
// is refused before anything touches the kernel or a process.
public sealed partial class PolicyEngine
{
    private static readonly TimeSpan DrainLimit = TimeSpan.FromSeconds(10);

    /// <summary>The workload with this cgroup id, running or recently ended; null when this enforcer never started it.</summary>
    internal ManagedWorkload? Find(ulong cgroupId) =>
        _workloads.TryGetValue(cgroupId, out var w) ? w : _finished.FirstOrDefault(f => f.CgroupId == cgroupId);

    /// <summary>Running workloads, and the most recent ended ones when <paramref name="includeExited"/>.</summary>
    internal IReadOnlyList<ManagedWorkload> List(bool includeExited) =>
        [.. _workloads.Values.OrderBy(w => w.Started), .. includeExited ? _finished.Where(f => !_workloads.ContainsKey(f.CgroupId)) : []];

    /// <summary>The kernel's view of a running workload's cgroup (null once it ended: see <see cref="ManagedWorkload.End"/>).</summary>
    internal CgroupState? KernelState(ManagedWorkload w) => w.End is null ? _session.Kernel.State(w.CgroupId) : null;

    /// <summary>
    /// Kills a managed workload's whole cgroup and returns once it is empty and torn down.
    /// Immediate: <c>cgroup.kill</c>. Graceful: SIGTERM to every process, then <c>cgroup.kill</c>
    /// after <c>[watchdog] kill_grace_ms</c> if any is left. No lock is held while waiting, so
    /// other kills (and every other request) proceed meanwhile.
    /// </summary>
    /// <param name="cgroupId">The workload's cgroup.</param>
    /// <param name="graceful">SIGTERM first, SIGKILL after the grace period.</param>
    /// <param name="reason">Why, for the kill event and reason.</param>
    /// <param name="stopping">
    /// Cancelled when the enforcer stops (an RPC passes <see cref="Stopping"/>): the wait ends at
    /// once, what is left is killed, and the call answers UNAVAILABLE; the shutdown's own kills pass none.
    /// </param>
    /// <exception cref="EngineException">NotFound for a cgroup this enforcer does not manage; Unavailable when the enforcer stopped meanwhile.</exception>
    internal async Task<KillOutcome> KillAsync(ulong cgroupId, bool graceful, string reason = "KillProcess", CancellationToken stopping = default)
    {
        try
        {
            return await KillUntilStoppedAsync(cgroupId, graceful, reason, stopping).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            throw ShuttingDown();
        }
    }

    private async Task<KillOutcome> KillUntilStoppedAsync(ulong cgroupId, bool graceful, string reason, CancellationToken stopping)
    {
        var w = Find(cgroupId) ?? throw EngineException.NotManaged(cgroupId);
        var watch = Stopwatch.StartNew();
        if (w.End is not null)
            return new KillOutcome(true, false, watch.Elapsed);
        w.TrySetKillReason(graceful ? $"{reason} (graceful)" : reason);
        bool sigkill = true;
        if (graceful)
        {
            var decided = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            w.GracefulKill = decided.Task;
            try
            {
                int signalled = await Task.Run(() => CgroupSignals.SignalAll(w.CgroupPath, Mis.Native.Signals.SIGTERM)).ConfigureAwait(false);
                Events.Publish(KillEvent(w, $"{reason}: SIGTERM to {signalled} process(es), SIGKILL after {Config.Watchdog.KillGraceMs} ms"));
                sigkill = !await CgroupSignals.WaitEmptyAsync(w.CgroupPath, Config.Watchdog.KillGrace, stopping).ConfigureAwait(false);
            }
            finally
            {
                if (sigkill)
                    CgroupKiller.Kill(w.CgroupPath);
                decided.TrySetResult();
            }
            if (sigkill)
                Events.Publish(KillEvent(w, $"{reason}: grace of {Config.Watchdog.KillGraceMs} ms over, cgroup.kill"));
        }
        else
        {
            CgroupKiller.Kill(w.CgroupPath);
            Events.Publish(KillEvent(w, $"{reason}: cgroup.kill"));
        }
        await CgroupSignals.WaitEmptyAsync(w.CgroupPath, DrainLimit, stopping).ConfigureAwait(false);
        await w.Completion.WaitAsync(DrainLimit, stopping).ConfigureAwait(false);
        _log.WorkloadKilled(cgroupId, graceful, sigkill, watch.ElapsedMilliseconds);
        return new KillOutcome(false, sigkill, watch.Elapsed);
    }

    /// <summary>Turns learning mode on or off for a running managed workload.</summary>
    /// <exception cref="EngineException">NotFound (not managed) or FailedPrecondition (ended).</exception>
    internal void SetLearningMode(ulong cgroupId, bool enabled)
    {
        var w = Running(cgroupId);
        try
        {
            _session.Kernel.SetLearningMode(cgroupId, enabled);
        }
        catch (KeyNotFoundException)
        {
            throw Ended(cgroupId);
        }
        _log.LearningModeSet(cgroupId, enabled);
    }

    /// <summary>
    /// The manual DEFCON override (see <see cref="KernelEnforcer.SetDefcon"/>): raising is always
    /// allowed; lowering resets the violation count and needs <paramref name="reset"/>; a killed
    /// cgroup and one in learning mode are refused. Entering DEFCON 1 with kill returns once the
    /// cgroup is empty.
    /// </summary>
    /// <exception cref="EngineException">NotFound, FailedPrecondition as above; Unavailable when the enforcer stops during DEFCON 1's drain.</exception>
    internal async Task<DefconOutcome> SetDefconAsync(ulong cgroupId, DefconLevel level, bool reset)
    {
        var w = Running(cgroupId);
        var state = _session.Kernel.State(cgroupId) ?? throw Ended(cgroupId);
        if (state.Killed)
            throw new EngineException(EngineError.FailedPrecondition, $"cgroup {cgroupId} was killed at DEFCON 1; its level is final");
        if (state.Learning)
            throw new EngineException(EngineError.FailedPrecondition,
                $"cgroup {cgroupId} is in learning mode, where levels do not move; turn learning mode off first (SetLearningMode)");
        if (level > state.Defcon && !reset)
            throw new EngineException(EngineError.FailedPrecondition,
                $"lowering cgroup {cgroupId} from DEFCON {state.Defcon} to {level} resets its violation count; set reset = true to do that");
        if (level == state.Defcon && !reset)
            return new DefconOutcome(state.Defcon, state.Defcon, state.Violations, false);

        bool killing = level == 1 && Config.Defcon.KillAtLevel1;
        if (killing)
            w.TrySetKillReason("SetDefcon: DEFCON 1");
        ViolationOutcome outcome;
        try
        {
            outcome = _session.Kernel.SetDefcon(cgroupId, level);
        }
        catch (KeyNotFoundException)
        {
            throw Ended(cgroupId);
        }
        _log.DefconSet(cgroupId, outcome.DefconBefore, outcome.DefconAfter);
        if (killing)
        {
            try
            {
                await CgroupSignals.WaitEmptyAsync(w.CgroupPath, DrainLimit, Stopping).ConfigureAwait(false);
                await w.Completion.WaitAsync(DrainLimit, Stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (Stopping.IsCancellationRequested)
            {
                throw ShuttingDown();
            }
        }
        return new DefconOutcome(outcome.DefconBefore, outcome.DefconAfter, outcome.Violations, killing);
    }

    private ManagedWorkload Running(ulong cgroupId)
    {
        var w = Find(cgroupId) ?? throw EngineException.NotManaged(cgroupId);
        return w.End is null ? w : throw Ended(cgroupId);
    }

    private static EngineException ShuttingDown() => new(EngineError.Unavailable, "the enforcer is shutting down");

    private static EngineException Ended(ulong cgroupId) =>
        new(EngineError.FailedPrecondition, $"the workload of cgroup {cgroupId} has already ended");

    private EnforcementEvent KillEvent(ManagedWorkload w, string reason)
    {
        var state = KernelState(w);
        return new EnforcementEvent
        {
            Event = "kill",
            Timestamp = DateTimeOffset.UtcNow,
            CgroupId = w.CgroupId,
            Defcon = state?.Defcon ?? DefconLevel.NotKnown,
            Violations = state?.Violations ?? 0,
            Decision = "kill",
            Reason = reason,
        };
    }

    private async Task KillForShutdownAsync(ManagedWorkload w)
    {
        try
        {
            await KillAsync(w.CgroupId, graceful: false, reason: "enforcer shutdown").ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or EngineException or IOException)
        {
            _log.TeardownFailed(w.CgroupId, e.Message);
        }
    }
}
