using System.Text;
using Microsoft.Win32.SafeHandles;
using Mis.Enforcer.Cgroups;
using Mis.Enforcer.Confinement;
using Mis.Enforcer.Kernel;
using Mis.Gym.Scenarios;

namespace Mis.Gym.Envs;

internal sealed partial class KernelBackend
{
    /// <summary>One episode's workload: its cgroup, the confined actuator, its supervisor and pipes.</summary>
    private sealed partial class Episode : IDisposable
    {

        private readonly Workload _workload;
        private readonly SeccompSupervisor _supervisor;
        private readonly StreamWriter _input;
        private readonly StreamReader _output;
        private readonly MountNamespace _files;

        private Episode(WorkloadCgroup cgroup, Workload workload, SeccompSupervisor supervisor, StreamWriter input, StreamReader output, MountNamespace files)
        {
            Cgroup = cgroup;
            _files = files;
            _workload = workload;
            _supervisor = supervisor;
            _input = input;
            _output = output;
        }

        internal WorkloadCgroup Cgroup { get; }

        internal bool Dead { get; set; }

        internal int LastDefcon { get; private set; } = 5;

        internal ulong LastViolations { get; private set; }

        internal ulong LastSlowdown { get; private set; }

        /// <summary>The kernel's slowdown total at the last reading.</summary>
        internal ulong RawSlowdownNs { get; set; }

        internal static Episode Start(ActionScenario scenario, KernelEnforcer kernel, WorkloadCgroups cgroups, KernelBackendFiles files, bool learning = false)
        {
            var cgroup = cgroups.CreateWorkload("gym-" + scenario.Name);
            Workload? workload = null;
            MountNamespace? view = null;
            SafeFileHandle? childIn = null, childOut = null, parentIn = null, parentOut = null;
            try
            {
                (childIn, parentIn) = CloexecPipe.Create();   // the actuator reads commands from childIn
                (parentOut, childOut) = CloexecPipe.Create(); // and writes results to childOut
                view = files.CreateNamespace();
                kernel.Manage(cgroup.Path, learning, PolicyId, scenario.Defcon);
                workload = new WorkloadLauncher().Launch(new LaunchSpec
                {
                    CgroupPath = cgroup.Path,
                    MountNamespace = view,
                    Command = [KernelBackendActuator.Python, "-I", "-S", "-u", "-c", KernelBackendActuator.Script],
                    Identity = WorkloadIdentity.Root,
                    Stdin = childIn,
                    Stdout = childOut,
                });
                childIn.Dispose();
                childOut.Dispose();
                var supervisor = SeccompSupervisor.Start(workload, learning ? new LearningFileDecider(scenario.Policy, kernel, cgroup.Id) : scenario.Policy, kernel);
                workload.Go();
                var input = new StreamWriter(new FileStream(parentIn, FileAccess.Write, 1), new UTF8Encoding(false)) { AutoFlush = true, NewLine = "\n" };
                var output = new StreamReader(new FileStream(parentOut, FileAccess.Read, 1), Encoding.UTF8);
                var episode = new Episode(cgroup, workload, supervisor, input, output, view);
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
                kernel.Unmanage(cgroup.Id);
                cgroup.Dispose();
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

        internal bool WaitDead(TimeSpan timeout) => _workload.WaitForExit(timeout) is not null;

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
            _workload.Dispose(); // kills it if it still runs, and reaps it
            _supervisor.Dispose();
            _output.Dispose();
            _files.Dispose();
        }

    }
}
