using System.Text;
using Microsoft.Win32.SafeHandles;
using Mis.Enforcer.Cgroups;
using Mis.Enforcer.Confinement;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Session;
using Mis.Gym.Scenarios;

namespace Mis.Gym.Envs;

public sealed partial class KernelBackend
{
    /// <summary>One episode's workload: its cgroup, the confined actuator, its supervisor and pipes.</summary>
    private sealed partial class Episode : IDisposable
    {

        private readonly EnforcedWorkload _workload;
        private readonly StreamWriter _input;
        private readonly StreamReader _output;
        private readonly MountNamespace _files;

        private Episode(EnforcedWorkload workload, StreamWriter input, StreamReader output, MountNamespace files, EpisodeSyscalls? syscalls)
        {
            (_workload, _input, _output, _files) = (workload, input, output, files);
            Syscalls = syscalls;
        }

        /// <summary>Where its syscalls go (recording, live scoring), when the backend watches them.</summary>
        internal EpisodeSyscalls? Syscalls { get; }

        /// <summary>The actuator's cgroup.</summary>
        internal WorkloadCgroup Cgroup => _workload.Cgroup;

        /// <summary>The cgroup's enforcement state, or null when the kernel no longer has it.</summary>
        internal CgroupState? State() => _workload.State();

        internal bool Dead { get; set; }

        internal int LastDefcon { get; private set; } = 5;

        internal ulong LastViolations { get; private set; }

        internal ulong LastSlowdown { get; private set; }

        /// <summary>The kernel's slowdown total at the last reading.</summary>
        internal ulong RawSlowdownNs { get; set; }

        internal static Episode Start(ActionScenario scenario, EnforcementSession session, PolicySlot policy, KernelBackendFiles files, WorkloadIdentity identity, bool learning,
            EpisodeSyscalls? syscalls)
        {
            EnforcedWorkload? workload = null;
            MountNamespace? view = null;
            SafeFileHandle? childIn = null, childOut = null, parentIn = null, parentOut = null;
            try
            {
                (childIn, parentIn) = CloexecPipe.Create();   // the actuator reads commands from childIn
                (parentOut, childOut) = CloexecPipe.Create(); // and writes results to childOut
                view = files.CreateNamespace(identity);
                workload = session.Launch(new EnforcedWorkloadSpec
                {
                    Command = [KernelBackendActuator.Python, "-I", "-S", "-u", "-c", KernelBackendActuator.Script],
                    Policy = policy,
                    Identity = identity,
                    Learning = learning,
                    Label = "gym-" + scenario.Name,
                    MountNamespace = view,
                    Stdin = childIn,
                    Stdout = childOut,
                    // Learning mode records what the policy denies and allows it.
                    Decider = learning ? w => new LearningFileDecider(scenario.Policy, session.Kernel, w.CgroupId) : null,
                    OnEvent = syscalls is not { Active: true } ? null : e =>
                    {
                        if (e.Type == KernelEventType.Syscall)
                            syscalls.Add(e.Pid, e.Tid, e.Comm, (int)e.Value);
                    },
                });
                var launched = workload;
                syscalls?.KillWith(() => launched.Kill());
                childIn.Dispose();
                childOut.Dispose();
                var input = new StreamWriter(new FileStream(parentIn, FileAccess.Write, 1), new UTF8Encoding(false)) { AutoFlush = true, NewLine = "\n" };
                var output = new StreamReader(new FileStream(parentOut, FileAccess.Read, 1), Encoding.UTF8);
                var episode = new Episode(workload, input, output, view, syscalls);
                // One round trip: the actuator has started and is waiting for commands.
                if (episode.Do("n") != 0)
                    throw new InvalidOperationException("the kernel backend's actuator did not start (see its stderr)");
                return episode;
            }
            catch
            {
                childIn?.Dispose();
                childOut?.Dispose();
                parentIn?.Dispose();
                parentOut?.Dispose();
                workload?.Dispose();
                view?.Dispose();
                throw;
            }
        }

        /// <summary>Sends one command; the errno the actuator reports, or null when it died.</summary>
        internal int? Do(string command)
        {
            if (Dead)
                return null;
            try
            {
                _input.Write(command + "\n"); // one write(): the actuator does one read() per command
                string? line = _output.ReadLine();
                if (line is null)
                    return null;
                WaitBlockedInRead();
                int space = line.IndexOf(' ');
                return int.Parse(space < 0 ? line : line[..space], System.Globalization.CultureInfo.InvariantCulture);
            }
            catch (IOException)
            {
                return null;
            }
        }

        // The actuator's next read() of stdin enters the kernel (and is slowed, and counted) after it
        // wrote the answer; wait until it sleeps in that read, so every reading of the kernel state
        // sees the same syscalls for the same actions. /proc/PID/syscall starts with the syscall's
        // number (0, read) only while the task is blocked in it; "running" otherwise.
        private void WaitBlockedInRead()
        {
            string path = $"/proc/{_workload.Pid}/syscall";
            long deadline = Environment.TickCount64 + 2000;
            var spin = new SpinWait();
            while (Environment.TickCount64 < deadline)
            {
                try
                {
                    if (File.ReadAllText(path).StartsWith("0 ", StringComparison.Ordinal))
                        return;
                }
                catch (IOException)
                {
                    return; // gone
                }
                spin.SpinOnce(sleep1Threshold: -1);
            }
        }

        internal bool WaitDead(TimeSpan timeout) => _workload.Wait(timeout) is not null;

        internal BackendState Remember(BackendState state)
        {
            (LastDefcon, LastViolations, LastSlowdown) = (state.Defcon, state.Violations, state.SlowdownNs);
            return state;
        }

        public void Dispose()
        {
            try
            {
                _input.Dispose();
            }
            catch (IOException)
            {
                // the actuator is gone: nothing to flush to
            }
            _workload.Dispose(); // kills it if it still runs, reaps it and removes its cgroup
            _output.Dispose();
            _files.Dispose();
        }

    }
}
