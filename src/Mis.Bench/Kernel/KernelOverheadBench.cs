using System.Diagnostics;
using System.Globalization;
using Mis.Enforcer.Bpf;
using Mis.Enforcer.Cgroups;
using Mis.Enforcer.Configuration;
using Mis.Enforcer.Confinement;
using Mis.Enforcer.Defcon;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Policy;
using Mis.Enforcer.Session;
using Mis.Native;
using Mis.Native.Bpf;

namespace Mis.Bench.Kernel;

/// <summary>What <see cref="KernelOverheadBench.Run"/> is asked to do.</summary>
public sealed record KernelOverheadOptions
{
    /// <summary>getppid() calls per measured loop.</summary>
    public int Iterations { get; init; } = 500_000;

    /// <summary>Rounds; each round measures every configuration once, in turn, so drift in the machine's load hits all alike.</summary>
    public int Rounds { get; init; } = 5;

    /// <summary>Violation cycles (DEFCON 5 to 1 and back) for the kernel transition timing.</summary>
    public int TransitionCycles { get; init; } = 50;

    /// <summary>Told at every step: what is being measured.</summary>
    public Action<string>? Progress { get; init; }
}

/// <summary>One configuration's getppid cost: the median over rounds, on the loop thread's CPU clock and on the wall clock.</summary>
/// <param name="Name">bare, floor, mis_unmanaged, mis_managed_bpf, mis_managed.</param>
/// <param name="Description">What was attached and where the loop ran.</param>
/// <param name="CpuNs">Median CPU nanoseconds per call.</param>
/// <param name="WallNs">Median wall nanoseconds per call (inflated by preemption on a loaded machine).</param>
/// <param name="Samples">Each round's CPU nanoseconds per call.</param>
public sealed record SyscallCost(string Name, string Description, double CpuNs, double WallNs, IReadOnlyList<double> Samples);

/// <summary>A program's mean kernel run time over one measured phase.</summary>
/// <param name="Program">The program.</param>
/// <param name="Phase">Which configuration ran meanwhile.</param>
/// <param name="Runs">Runs during the phase (every process on the host, for global hooks).</param>
/// <param name="MeanNs">Mean nanoseconds per run.</param>
public sealed record ProgramRunTime(string Program, string Phase, ulong Runs, double? MeanNs);

/// <summary>What the kernel overhead benchmark measured.</summary>
public sealed record KernelOverheadResult
{
    /// <summary>Cost of one getppid() per configuration, in measurement order.</summary>
    public required IReadOnlyList<SyscallCost> Syscall { get; init; }

    /// <summary>Per-program run time from the kernel's BPF statistics.</summary>
    public required IReadOnlyList<ProgramRunTime> Programs { get; init; }

    /// <summary>Kernel time of a <c>mis_report</c> violation that changed the DEFCON level (the transition, events included).</summary>
    public required LatencySummary TransitionKernel { get; init; }

    /// <summary>Kernel time of a violation that did not change the level.</summary>
    public required LatencySummary ViolationKernel { get; init; }

    /// <summary>Kernel time of a DEFCON query (what the supervisor reads before each decision).</summary>
    public required LatencySummary QueryKernel { get; init; }

    /// <summary>A transition as user space sees it: the whole BPF_PROG_TEST_RUN call.</summary>
    public required LatencySummary TransitionCall { get; init; }

    /// <summary>getppid() calls per loop.</summary>
    public required int Iterations { get; init; }

    /// <summary>Rounds measured.</summary>
    public required int Rounds { get; init; }

    internal SyscallCost Cost(string name) => Syscall.First(c => c.Name == name);

    /// <summary>Ratio of a configuration's cost to the bare baseline.</summary>
    public double Ratio(string name) => Cost(name).CpuNs / Cost(KernelOverheadBench.Bare).CpuNs;

    /// <summary>Nanoseconds a configuration adds over the empty-program floor.</summary>
    public double OverFloorNs(string name) => Cost(name).CpuNs - Cost(KernelOverheadBench.Floor).CpuNs;
}

/// <summary>
/// What MIS costs every syscall, as ratios against a baseline measured in the same run: a tight
/// getppid() loop (native/bench, C) with nothing attached; with empty programs at every hook MIS
/// uses (bpf/bench_floor.bpf.c: the floor any BPF enforcer pays); with the enforcer attached and
/// the loop outside MIS's cgroups; with the loop inside a managed cgroup at DEFCON 5 (the BPF hook
/// alone, and then launched by the real launcher, seccomp filter and supervisor included). Then,
/// with BPF statistics on, per-program run time and the kernel time of a DEFCON transition.
/// Times are the loop thread's CPU time (preemption on a shared machine is not in it); each
/// configuration's figure is the median of the rounds, which interleave the configurations.
/// </summary>
public static class KernelOverheadBench
{
    /// <summary>The configuration with no program attached.</summary>
    public const string Bare = "bare";
    /// <summary>The configuration with empty programs at the same hooks.</summary>
    public const string Floor = "floor";
    internal const string Unmanaged = "mis_unmanaged";
    internal const string ManagedBpf = "mis_managed_bpf";
    internal const string Managed = "mis_managed";
    private const string FloorObject = "bench_floor.bpf.o";
    private static readonly string[] FloorCgroupPrograms = ["floor_connect4", "floor_connect6", "floor_sendmsg4", "floor_sendmsg6"];

    private static readonly (string Name, string Description)[] Configurations =
    [
        (Bare, "no MIS, no BPF program of the benchmark attached"),
        (Floor, "empty programs at MIS's hooks (tp_btf sys_enter and sched_process_exec global, cgroup hooks on a scratch cgroup)"),
        (Unmanaged, "MIS attached (a cgroup managed), the loop outside MIS's cgroups"),
        (ManagedBpf, "the loop inside a managed cgroup at DEFCON 5 (BPF hook only, no seccomp filter)"),
        (Managed, "the loop launched by MIS into a managed cgroup at DEFCON 5 (seccomp filter and supervisor too)"),
    ];

    /// <summary>Runs the benchmark; every attachment and cgroup it made is gone when it returns.</summary>
    public static KernelOverheadResult Run(KernelOverheadOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Iterations <= 0 || options.Rounds <= 0 || options.TransitionCycles <= 0)
            throw new ArgumentException("iterations, rounds and transition cycles must be positive", nameof(options));
        string load = BenchLoad.Path;
        if (!EmbeddedBpf.TryLoad(FloorObject, out var floorElf, out var whyMissing))
            throw new KernelUnavailableException($"the floor programs are unavailable: {whyMissing}");
        var ladder = new DefconConfig { KillAtLevel1 = false };
        using var floor = BpfObject.Open(floorElf, "mis_bench_floor");
        floor.Load();
        using var session = EnforcementSession.Open(new SessionOptions { Defcon = ladder });
        var kernel = session.Kernel;
        using var scratch = session.CreateCgroup("bench-floor");
        using var policy = session.Install(BuiltinPolicy.Create());

        var cpu = Configurations.ToDictionary(c => c.Name, _ => new List<double>());
        var wall = Configurations.ToDictionary(c => c.Name, _ => new List<double>());
        void Record(string name, (double Cpu, double Wall) cost)
        {
            cpu[name].Add(cost.Cpu);
            wall[name].Add(cost.Wall);
        }

        for (int round = 1; round <= options.Rounds; round++)
        {
            string of = $"round {round}/{options.Rounds}";
            options.Progress?.Invoke($"{of}: bare");
            Record(Bare, Loop(load, options.Iterations, cgroup: null));
            options.Progress?.Invoke($"{of}: floor");
            using (AttachFloor(floor, scratch.Path))
                Record(Floor, Loop(load, options.Iterations, cgroup: null));
            using (var managedCgroup = session.Manage("bench-overhead"))
            {
                options.Progress?.Invoke($"{of}: MIS, unmanaged");
                Record(Unmanaged, Loop(load, options.Iterations, cgroup: null));
                options.Progress?.Invoke($"{of}: MIS, managed (BPF)");
                Record(ManagedBpf, Loop(load, options.Iterations, managedCgroup.Path));
                options.Progress?.Invoke($"{of}: MIS, managed (launcher)");
                Record(Managed, LaunchedLoop(load, options.Iterations, session, policy));
            }
        }

        options.Progress?.Invoke("per-program run time");
        var programs = new List<ProgramRunTime>();
        using (BpfRunStats.Enable())
        {
            using (AttachFloor(floor, scratch.Path))
                programs.Add(Phase("floor_sys_enter", Floor, floor.Program("floor_sys_enter").Fd, () => Loop(load, options.Iterations, null)));
            using (var managedCgroup = session.Manage("bench-overhead"))
            {
                int sysEnter = kernel.ProgramFd("mis_sys_enter");
                programs.Add(Phase("mis_sys_enter", Unmanaged, sysEnter, () => Loop(load, options.Iterations, null)));
                programs.Add(Phase("mis_sys_enter", ManagedBpf, sysEnter, () => Loop(load, options.Iterations, managedCgroup.Path)));
            }
            options.Progress?.Invoke("DEFCON transitions in the kernel");
            var transitions = Transitions(session, options.TransitionCycles);
            return new KernelOverheadResult
            {
                Syscall = [.. Configurations.Select(c => new SyscallCost(c.Name, c.Description,
                    LatencySummary.Median(cpu[c.Name]), LatencySummary.Median(wall[c.Name]), cpu[c.Name]))],
                Programs = programs,
                TransitionKernel = transitions.Transition,
                ViolationKernel = transitions.Violation,
                QueryKernel = transitions.Query,
                TransitionCall = transitions.Call,
                Iterations = options.Iterations,
                Rounds = options.Rounds,
            };
        }
    }

    private static ProgramRunTime Phase(string program, string phase, int fd, Func<(double, double)> run)
    {
        var before = BpfRunStats.Read(fd);
        run();
        var delta = BpfRunStats.Read(fd).Since(before);
        return new ProgramRunTime(program, phase, delta.RunCount, delta.MeanNs);
    }

    /// <summary>The floor's programs attached as MIS attaches its own; disposing detaches them.</summary>
    private static Attachments AttachFloor(BpfObject floor, string scratchCgroup)
    {
        var links = new Attachments();
        try
        {
            links.Add(floor.Program("floor_sys_enter").Attach());
            links.Add(floor.Program("floor_exec").Attach());
            using var fd = Libc.OpenDirectory(scratchCgroup);
            foreach (string name in FloorCgroupPrograms)
                links.Add(floor.Program(name).AttachCgroup(fd));
            return links;
        }
        catch
        {
            links.Dispose();
            throw;
        }
    }

    private sealed class Attachments : List<BpfLink>, IDisposable
    {
        public void Dispose()
        {
            foreach (var link in this)
                link.Dispose();
            Clear();
        }
    }

    /// <summary>Runs the loop as a plain child process (joining <paramref name="cgroup"/> first when given).</summary>
    internal static (double Cpu, double Wall) Loop(string load, int iterations, string? cgroup)
    {
        var psi = new ProcessStartInfo(load) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("getppid");
        psi.ArgumentList.Add(iterations.ToString(CultureInfo.InvariantCulture));
        if (cgroup is not null)
            psi.ArgumentList.Add(cgroup);
        using var process = Process.Start(psi)!;
        string output = process.StandardOutput.ReadToEnd();
        string error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"mis-bench-load getppid failed (exit {process.ExitCode}): {error.Trim()}");
        return Parse(output);
    }

    /// <summary>Runs the loop as a MIS workload: the real launcher, its seccomp filter, the supervisor.</summary>
    private static (double Cpu, double Wall) LaunchedLoop(string load, int iterations, EnforcementSession session, PolicySlot policy)
    {
        string output = Path.GetTempFileName();
        try
        {
            WorkloadExit exit;
            using (var stdout = File.OpenHandle(output, FileMode.Create, FileAccess.Write))
            using (var workload = session.Launch(new EnforcedWorkloadSpec
            {
                Command = [load, "getppid", iterations.ToString(CultureInfo.InvariantCulture)],
                Policy = policy,
                Identity = WorkloadIdentity.Root,
                Label = "bench-overhead",
                Stdout = stdout,
            }))
            {
                exit = workload.Wait();
                workload.Finish();
            }
            if (exit.ExitCode != 0)
                throw new InvalidOperationException($"mis-bench-load getppid under MIS {exit}");
            return Parse(File.ReadAllText(output));
        }
        finally
        {
            File.Delete(output);
        }
    }

    private static (double Cpu, double Wall) Parse(string output)
    {
        var parts = output.Trim().Split(' ');
        if (parts.Length != 2 || !double.TryParse(parts[0], CultureInfo.InvariantCulture, out double cpuNs)
            || !double.TryParse(parts[1], CultureInfo.InvariantCulture, out double wallNs))
            throw new InvalidOperationException($"mis-bench-load getppid printed '{output.Trim()}', expected 'CPU_NS WALL_NS'");
        return (cpuNs, wallNs);
    }

    /// <summary>
    /// Climbs a managed (empty) cgroup from DEFCON 5 to 1 by reported violations, cycle after cycle
    /// (reset to 5 in between), reading mis_report's run time around every call: one call is one
    /// program run, so each delta is that run's kernel time.
    /// </summary>
    private static (LatencySummary Transition, LatencySummary Violation, LatencySummary Query, LatencySummary Call) Transitions(
        EnforcementSession session, int cycles)
    {
        var kernel = session.Kernel;
        var transition = new List<double>();
        var violation = new List<double>();
        var query = new List<double>();
        var call = new List<double>();
        int report = kernel.ProgramFd("mis_report");
        double nsPerTick = 1e9 / Stopwatch.Frequency;
        using (var cgroup = session.Manage("bench-transitions", defcon: new DefconConfig { KillAtLevel1 = false }))
        {
            for (int cycle = 0; cycle < cycles; cycle++)
            {
                for (int i = 0; i < 15; i++)
                {
                    var before = BpfRunStats.Read(report);
                    long t0 = Stopwatch.GetTimestamp();
                    var outcome = kernel.Report(new ViolationReport(cgroup.Id, ViolationOp.FileRead, 0, 0, "/bench/violation"));
                    long t1 = Stopwatch.GetTimestamp();
                    var delta = BpfRunStats.Read(report).Since(before);
                    if (delta.RunCount != 1)
                        continue; // someone else ran our program meanwhile: not one run
                    if (outcome.DefconAfter != outcome.DefconBefore)
                    {
                        transition.Add(delta.RunTimeNs);
                        call.Add((t1 - t0) * nsPerTick);
                    }
                    else
                    {
                        violation.Add(delta.RunTimeNs);
                    }
                    before = BpfRunStats.Read(report);
                    kernel.Defcon(cgroup.Id);
                    delta = BpfRunStats.Read(report).Since(before);
                    if (delta.RunCount == 1)
                        query.Add(delta.RunTimeNs);
                }
                kernel.SetDefcon(cgroup.Id, DefconLevel.Normal);
            }
        }
        return (LatencySummary.Of([.. transition]), LatencySummary.Of([.. violation]), LatencySummary.Of([.. query]), LatencySummary.Of([.. call]));
    }
}
