using System.Text;
using Microsoft.Win32.SafeHandles;
using Mis.Enforcer.Cgroups;
using Mis.Enforcer.Confinement;
using Mis.Enforcer.Defcon;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Session;
using Mis.Enforcer.Policy;
using Mis.Gym.Scenarios;

namespace Mis.Gym.Envs;

/// <summary>
/// One episode of a <see cref="CommandEnv"/>: the scenario's program running confined in a fresh
/// MIS cgroup (under the kernel enforcer with the scenario's DEFCON ladder and network rules, and
/// the seccomp supervisor with its policy), inside the episode's private view of the files; its
/// output kept (the last <see cref="OutputLimit"/> characters) for the final step's info.
/// Disposing kills whatever is left of it and removes its cgroup and its view.
/// </summary>
public sealed partial class CommandRun : IDisposable
{
    /// <summary>Characters of the program's stdout and stderr kept, each.</summary>
    internal const int OutputLimit = 4096;

    /// <summary>How long a reward command may run.</summary>
    internal static readonly TimeSpan RewardCommandTimeout = TimeSpan.FromSeconds(30);


    private readonly EnforcementSession _session;
    private readonly MountNamespace _view;
    private readonly EnforcedWorkload _workload;
    private readonly Task<string> _stdout, _stderr;
    private bool _disposed;

    private CommandRun(EnforcementSession session, MountNamespace view, EnforcedWorkload workload, Task<string> stdout, Task<string> stderr)
    {
        (_session, _view, _workload, _stdout, _stderr) = (session, view, workload, stdout, stderr);
    }

    /// <summary>The program's cgroup.</summary>
    internal WorkloadCgroup Cgroup => _workload.Cgroup;

    /// <summary>Starts <paramref name="scenario"/>'s program (it runs from here on).</summary>
    internal static CommandRun Start(CommandScenario scenario, EnforcementSession session, PolicySlot policy, KernelBackendFiles files)
    {
        var spec = scenario.Workload;
        MountNamespace? view = null;
        EnforcedWorkload? workload = null;
        SafeFileHandle? outRead = null, outWrite = null, errRead = null, errWrite = null;
        try
        {
            view = files.CreateNamespace(WorkloadIdentity.Root);
            (outRead, outWrite) = CloexecPipe.Create();
            (errRead, errWrite) = CloexecPipe.Create();
            workload = Launch(session, policy, "gym-" + scenario.Name, view, spec.Command, spec.WorkingDirectory, outWrite, errWrite, start: false);
            outWrite.Dispose();
            errWrite.Dispose();
            var stdout = Collect(outRead);
            var stderr = Collect(errRead);
            workload.Start();
            return new CommandRun(session, view, workload, stdout, stderr);
        }
        catch
        {
            outRead?.Dispose();
            outWrite?.Dispose();
            errRead?.Dispose();
            errWrite?.Dispose();
            workload?.Dispose();
            view?.Dispose();
            throw;
        }
    }

    /// <summary>Waits up to <paramref name="timeout"/> for the program's end; null while it runs.</summary>
    internal WorkloadExit? Wait(TimeSpan timeout) => _workload.Wait(timeout);

    /// <summary>The cgroup's enforcement state, or null when the kernel no longer has it.</summary>
    internal CgroupState? State() => _workload.State();

    /// <summary>Kills the program's whole cgroup (the timeout) and reaps it.</summary>
    internal WorkloadExit Kill()
    {
        _workload.Kill();
        return _workload.Wait();
    }

    /// <summary>The tail of what the program wrote to stdout and stderr (complete once it and its children ended).</summary>
    internal (string Stdout, string Stderr) Output(TimeSpan wait)
    {
        Task.WaitAll([_stdout, _stderr], wait);
        return (_stdout.IsCompletedSuccessfully ? _stdout.Result : "", _stderr.IsCompletedSuccessfully ? _stderr.Result : "");
    }

    /// <summary>
    /// Runs the reward command in the episode's view (so it sees what the program wrote), in a cgroup
    /// of its own, confined but not policed, and returns the number it printed.
    /// </summary>
    /// <exception cref="InvalidOperationException">It printed no number, or did not end in time (with its output).</exception>
    internal double RunRewardCommand(WorkloadSpec spec)
    {
        var (outRead, outWrite) = CloexecPipe.Create();
        var (errRead, errWrite) = CloexecPipe.Create();
        EnforcedWorkload workload;
        using (outWrite)
        using (errWrite)
        {
            try
            {
                workload = Launch(_session, null, "gym-reward", _view, spec.RewardCommand, spec.WorkingDirectory, outWrite, errWrite, start: false);
            }
            catch
            {
                outRead.Dispose();
                errRead.Dispose();
                throw;
            }
        }
        using (workload)
        {
            var stdout = Collect(outRead);
            var stderr = Collect(errRead);
            workload.Start();
            var exit = workload.Wait(RewardCommandTimeout);
            if (exit is null)
                workload.Kill();
            Task.WaitAll([stdout, stderr], TimeSpan.FromSeconds(5));
            string printed = stdout.IsCompletedSuccessfully ? stdout.Result.Trim() : "";
            string errors = stderr.IsCompletedSuccessfully ? stderr.Result.Trim() : "";
            string what = $"reward_command of [workload] ({spec.Source}) [{string.Join(", ", spec.RewardCommand.Select(a => $"\"{a}\""))}]";
            if (exit is null)
                throw new InvalidOperationException($"{what} did not end within {RewardCommandTimeout.TotalSeconds:0} s; stderr: {errors}");
            if (!double.TryParse(printed, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double reward)
                || !double.IsFinite(reward))
                throw new InvalidOperationException($"{what} printed \"{printed}\" ({exit}); expected one number, e.g. 7.5; stderr: {errors}");
            return reward;
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        _workload.Dispose(); // kills it and whatever it left running, reaps it, removes its cgroup
        Output(TimeSpan.FromSeconds(2));
        _view.Dispose();
    }

    // The grader (no policy) runs confined but unpoliced, in a cgroup the kernel does not manage.
    private static EnforcedWorkload Launch(EnforcementSession session, PolicySlot? policy, string label, MountNamespace view,
        IReadOnlyList<string> command, string cwd, SafeFileHandle stdout, SafeFileHandle stderr, bool start) =>
        session.Launch(new EnforcedWorkloadSpec
        {
            Command = command,
            Policy = policy,
            Identity = WorkloadIdentity.Root,
            Label = label,
            WorkingDirectory = cwd,
            Stdout = stdout,
            Stderr = stderr,
            MountNamespace = view,
        }, start);

    // Reads to the end (every writer gone), keeping the tail.
    private static Task<string> Collect(SafeFileHandle read) => Task.Factory.StartNew(() =>
    {
        using var stream = new FileStream(read, FileAccess.Read, 1);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var tail = new StringBuilder();
        var buffer = new char[4096];
        int n;
        while ((n = reader.Read(buffer, 0, buffer.Length)) > 0)
        {
            tail.Append(buffer, 0, n);
            if (tail.Length > 2 * OutputLimit)
                tail.Remove(0, tail.Length - OutputLimit);
        }
        return tail.Length > OutputLimit ? tail.ToString(tail.Length - OutputLimit, OutputLimit) : tail.ToString();
    }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
}
