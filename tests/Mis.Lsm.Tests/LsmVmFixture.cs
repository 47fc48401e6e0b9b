using System.Reflection;
using Mis.Testing;

namespace Mis.Lsm.Tests;

/// <summary>
/// One VM boot for the whole test run (booting costs seconds and .NET runs 25–30× slower in the
/// emulated guest): it runs the guest test assembly and <c>mis doctor --json</c> once, and each
/// test reads its part of the results. A missing tool is kept as <see cref="Unavailable"/> and a
/// failed boot as <see cref="Failure"/>, so each test can skip or fail with the reason.
/// </summary>
public sealed class LsmVmFixture : IAsyncLifetime
{
    internal const string GuestXml = "guest.xml";
    internal const string GuestExit = "guest.exit";
    internal const string DoctorJson = "doctor.json";
    internal const string DoctorExit = "doctor.exit";
    internal const string BenchText = "bench.txt";

    /// <summary>
    /// Set to a file path, this run also measures <c>mis bench --workloads --rounds 3</c> in the VM
    /// (bare, the seccomp floor, MIS on the seccomp backend, MIS on the BPF LSM backend) and writes
    /// its table there. Opt-in: it takes tens of minutes under software emulation.
    /// </summary>
    internal const string BenchVariable = "MIS_LSM_VM_BENCH";

    internal string? Unavailable { get; private set; }

    internal Exception? Failure { get; private set; }

    internal LsmVmRun? Run { get; private set; }

    internal string? KernelRelease { get; private set; }

    public async ValueTask InitializeAsync()
    {
        if (!Environment.IsPrivilegedProcess)
            return; // each test says so through HostRequirements.Root()

        LsmVm vm;
        try
        {
            vm = LsmVm.Prepare();
        }
        catch (LsmVmUnavailableException e)
        {
            Unavailable = e.Message;
            return;
        }
        KernelRelease = vm.KernelRelease;

        try
        {
            string root = RepoRoot();
            string configuration = typeof(LsmVmFixture).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
                .Single(a => a.Key == "MisConfiguration").Value!;
            string guest = Path.Combine(root, "tests", "Mis.Lsm.Guest", "bin", configuration, "net10.0", "Mis.Lsm.Guest.Tests.dll");
            string mis = Path.Combine(root, "src", "Mis.Cli", "bin", configuration, "net10.0", "mis.dll");
            foreach (string built in new[] { guest, mis })
                if (!File.Exists(built))
                    throw new FileNotFoundException($"{built} is not built (dotnet build MIS.sln -c {configuration})", built);

            // Each step's exit code goes to its own file, so one failing does not hide the other.
            string script = $"""
                t0=$(cut -d' ' -f1 /proc/uptime)
                dotnet '{guest}' -xml "$MIS_VM_RESULTS/{GuestXml}" -noColor -diagnostics -longRunning 90
                echo $? >"$MIS_VM_RESULTS/{GuestExit}"
                t1=$(cut -d' ' -f1 /proc/uptime)
                dotnet '{mis}' doctor --json >"$MIS_VM_RESULTS/{DoctorJson}"
                echo $? >"$MIS_VM_RESULTS/{DoctorExit}"
                t2=$(cut -d' ' -f1 /proc/uptime)
                echo "mis-lsm: guest suite $t0..$t1 s, mis doctor $t1..$t2 s (guest uptime)"
                """;
            string? bench = Environment.GetEnvironmentVariable(BenchVariable) is { Length: > 0 } b ? Path.GetFullPath(b) : null;
            if (bench is not null)
                script += $"""

                    dotnet '{mis}' bench --workloads --rounds 3 >"$MIS_VM_RESULTS/{BenchText}" 2>&1
                    echo "mis-lsm: bench exit $?"
                    """;
            Run = await vm.RunAsync(script, root, keepVisible: [root], timeout: bench is null ? null : TimeSpan.FromMinutes(90));
            if (bench is not null)
                File.WriteAllText(bench, Run.ReadResult(BenchText) ?? $"the bench wrote nothing; VM output:\n{Run.Stdout}");
        }
        catch (Exception e) when (e is TimeoutException or InvalidOperationException or IOException or UnauthorizedAccessException)
        {
            Failure = e;
        }
    }

    public ValueTask DisposeAsync()
    {
        Run?.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>The run, or skips (fails under CI) / fails with why there is none.</summary>
    internal LsmVmRun Require()
    {
        HostRequirements.Root();
        HostRequirements.That(Unavailable is null, $"the BPF LSM VM cannot run here: {Unavailable}");
        if (Failure is not null)
            Assert.Fail($"the BPF LSM VM failed: {Failure.Message}");
        var run = Run!;
        var output = TestContext.Current.TestOutputHelper;
        output?.WriteLine($"LSM VM (kernel {KernelRelease}): boot {run.Boot.TotalSeconds:0.0} s, guest run {run.Run.TotalSeconds:0.0} s, qemu total {run.Total.TotalSeconds:0.0} s");
        output?.WriteLine(run.Stdout.Split('\n').LastOrDefault(l => l.StartsWith("mis-lsm:", StringComparison.Ordinal)) ?? "");
        return run;
    }

    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "MIS.sln")))
                return dir.FullName;
        throw new InvalidOperationException($"no MIS.sln above {AppContext.BaseDirectory}");
    }
}

[CollectionDefinition(Name)]
public sealed class LsmVmCollection : ICollectionFixture<LsmVmFixture>
{
    internal const string Name = "Lsm VM";
}
