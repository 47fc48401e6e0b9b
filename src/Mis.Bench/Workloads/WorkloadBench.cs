using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Mis.Enforcer.Confinement;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Policy;
using Mis.Enforcer.Session;

namespace Mis.Bench.Workloads;

/// <summary>What <see cref="WorkloadBench.Run"/> is asked to do.</summary>
public sealed record WorkloadBenchOptions
{
    /// <summary>Counted rounds; each runs every mode of a workload once, in alternation.</summary>
    public int Rounds { get; init; } = 5;

    /// <summary>How big each workload is.</summary>
    public WorkloadSizes Sizes { get; init; } = WorkloadSizes.Full;

    /// <summary>The account every mode runs the workloads as (<c>mis run</c>'s default).</summary>
    public string User { get; init; } = WorkloadIdentity.DefaultUserName;

    /// <summary>Supervisor threads of the floor, receiving on one listener.</summary>
    public int FloorThreads { get; init; } = 4;

    /// <summary>Only these workloads (keys); null: all.</summary>
    public IReadOnlySet<string>? Only { get; init; }

    /// <summary>Told before every run: "workload, round r/N (mode)".</summary>
    public Action<string>? Progress { get; init; }

    /// <summary>The policy under MIS; null: the built-in one, as <c>mis run</c> without --policy (tests give a denying one).</summary>
    internal WorkloadPolicy? Policy { get; init; }

    /// <summary>The longest one run may take before it is killed and its row fails.</summary>
    public TimeSpan RunLimit { get; init; } = TimeSpan.FromMinutes(2);
}

/// <summary>
/// <c>mis bench --workloads</c>: what a user feels. Real workloads (a file walk, a directory walk,
/// an exec loop, Python imports, a C compile, git, a multi-threaded reader), each timed inside
/// itself so that no launcher's start-up is counted, run as the same user in the same directory
/// with the same environment in four modes, alternating within every round: bare; the floor
/// (mis-notify-floor answering every open/exec notification with CONTINUE); the floor of a
/// deciding supervisor (opening the file itself and injecting it with ADDFD); and MIS, launched
/// through <see cref="EnforcementSession"/> exactly as <c>mis run</c> launches (built-in policy,
/// default DEFCON ladder). Under MIS every run must exit 0 with no violation: a denial fails the
/// workload's row, naming what was denied. While no workload runs under MIS nothing of MIS is
/// attached (the kernel's global hooks detach with the last managed cgroup), so bare is bare.
/// </summary>
public static class WorkloadBench
{
    private const string ElapsedPrefix = "elapsed_ns ";

    /// <summary>Runs every workload; everything it creates (files, cgroups) is gone when it returns.</summary>
    /// <exception cref="KernelUnavailableException">This host or build cannot enforce.</exception>
    public static WorkloadBenchResult Run(WorkloadBenchOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Rounds <= 0)
            throw new ArgumentException($"rounds must be positive, got {options.Rounds}", nameof(options));
        var clock = Stopwatch.StartNew();
        string loadStart = LoadAverage();
        var identity = WorkloadIdentity.User(options.User);
        var workloads = WorkloadCatalog.For(options.Sizes).Where(w => options.Only is null || options.Only.Contains(w.Key)).ToList();
        RequireTools();
        string floor = NativeTool("mis-notify-floor");
        string root = Directory.CreateTempSubdirectory("mis-bench-workloads-").FullName;
        try
        {
            var files = Prepare(root, options);
            var denials = new ConcurrentDictionary<ulong, ConcurrentQueue<string>>();
            // One session per file backend: seccomp everywhere, BPF LSM where the kernel allows it.
            using var backends = new BackendSessions();
            foreach (var (mode, backend) in new[] { (WorkloadMode.Mis, FileBackend.Seccomp), (WorkloadMode.MisLsm, FileBackend.Lsm) })
            {
                backends.Open(mode, new SessionOptions
                {
                    FileBackend = backend,
                    OnEvent = e =>
                    {
                        if (e.Type == KernelEventType.Violation)
                            denials.GetOrAdd(e.CgroupId, _ => new()).Enqueue($"{e.Op?.ToString() ?? "?"} {e.Target} ({e.Comm})");
                    },
                }, options.Policy ?? BuiltinPolicy.Create());
            }
            long rssKb = 0;
            var modes = new[] { WorkloadMode.Bare, WorkloadMode.Floor, WorkloadMode.FloorAddfd }.Concat(backends.Modes).ToArray();
            var figures = new List<WorkloadFigures>();
            foreach (var workload in workloads)
            {
                var samples = modes.ToDictionary(m => m, _ => new List<double>());
                var notifications = new List<double>();
                string? failure = null;
                var command = workload.Command(files);
                var environment = Environment(workload, files);
                try
                {
                    for (int round = 0; round <= options.Rounds; round++)
                    {
                        foreach (var mode in modes)
                        {
                            options.Progress?.Invoke(round == 0
                                ? $"{workload.Key}, warm-up ({WorkloadMath.Name(mode)})"
                                : $"{workload.Key}, round {round}/{options.Rounds} ({WorkloadMath.Name(mode)})");
                            double elapsed;
                            if (backends.For(mode) is { } under)
                            {
                                var run = RunUnderMis(under.Session, under.Slot, identity, workload, command, environment, files.Work, denials, options.RunLimit);
                                elapsed = run.ElapsedNs;
                                rssKb = Math.Max(rssKb, run.RssKb);
                                if (round > 0 && mode == WorkloadMode.Mis)
                                    notifications.Add(run.Notifications);
                            }
                            else
                            {
                                elapsed = RunOutside(floor, mode, options, workload, command, environment, files.Work);
                            }
                            if (round > 0)
                                samples[mode].Add(elapsed);
                        }
                    }
                }
                catch (WorkloadFailedException e)
                {
                    failure = e.Message;
                }
                figures.Add(new WorkloadFigures
                {
                    Workload = workload,
                    SamplesNs = samples.ToDictionary(p => p.Key, p => (IReadOnlyList<double>)p.Value),
                    MisNotifications = WorkloadMath.Median(notifications),
                    Failure = failure,
                });
            }
            return new WorkloadBenchResult
            {
                Rounds = options.Rounds,
                Workloads = figures,
                Modes = modes,
                FloorThreads = options.FloorThreads,
                User = identity.Name,
                LoadAverageStart = loadStart,
                LoadAverageEnd = LoadAverage(),
                EnforcerRssKb = rssKb,
                EnforcerPeakRssKb = ProcStatusKb("VmHWM:"),
                Elapsed = clock.Elapsed,
            };
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>One enforcement session, with the policy installed, per file backend measured.</summary>
    private sealed class BackendSessions : IDisposable
    {
        private readonly List<(WorkloadMode Mode, EnforcementSession Session, PolicySlot Slot)> _open = [];

        internal IEnumerable<WorkloadMode> Modes => _open.Select(b => b.Mode);

        /// <summary>Opens the session of <paramref name="mode"/>; one of the LSM backend where the kernel refuses BPF LSM is left out.</summary>
        internal void Open(WorkloadMode mode, SessionOptions options, WorkloadPolicy policy)
        {
            EnforcementSession session;
            try
            {
                session = EnforcementSession.Open(options);
            }
            catch (KernelUnavailableException) when (options.FileBackend == FileBackend.Lsm)
            {
                return;
            }
            try
            {
                _open.Add((mode, session, session.Install(policy)));
            }
            catch
            {
                session.Dispose();
                throw;
            }
        }

        internal (EnforcementSession Session, PolicySlot Slot)? For(WorkloadMode mode) =>
            _open.FirstOrDefault(b => b.Mode == mode) is { Session: not null } b ? (b.Session, b.Slot) : null;

        public void Dispose()
        {
            foreach (var (_, session, slot) in _open)
            {
                slot.Dispose();
                session.Dispose();
            }
        }
    }

    private sealed record MisRun(double ElapsedNs, long Notifications, long RssKb);

    private static MisRun RunUnderMis(
        EnforcementSession session, PolicySlot slot, WorkloadIdentity identity, WorkloadDefinition workload,
        IReadOnlyList<string> command, IReadOnlyList<string> environment, string work,
        ConcurrentDictionary<ulong, ConcurrentQueue<string>> denials, TimeSpan limit)
    {
        string output = Path.Combine(Path.GetDirectoryName(work)!, "mis-stdout.txt");
        string errors = Path.Combine(Path.GetDirectoryName(work)!, "mis-stderr.txt");
        WorkloadExit? exit;
        long notifications, rss;
        Mis.Enforcer.Kernel.CgroupState? state;
        ulong cgroup;
        using (var stdout = File.OpenHandle(output, FileMode.Create, FileAccess.Write))
        using (var stderr = File.OpenHandle(errors, FileMode.Create, FileAccess.Write))
        using (var launched = session.Launch(new EnforcedWorkloadSpec
        {
            Command = command,
            Policy = slot,
            Identity = identity,
            Label = $"bench-{workload.Key}",
            WorkingDirectory = work,
            Environment = environment,
            Stdout = stdout,
            Stderr = stderr,
        }))
        {
            cgroup = launched.CgroupId;
            exit = launched.Wait(limit);
            // The session, its supervisor and event reader are at their largest while a workload lives.
            rss = ProcStatusKb("VmRSS:");
            notifications = launched.Decisions.Notifications;
            state = launched.Finish().State;
        }
        string text = File.ReadAllText(output);
        string? denied = denials.TryRemove(cgroup, out var queue) ? string.Join("; ", queue.Distinct().Take(5)) : null;
        if (state is { Violations: > 0 } || denied is not null)
            throw new WorkloadFailedException(
                $"{workload.Key}: denied under MIS ({state?.Violations ?? 0} violations): {denied ?? "no violation event read"} " +
                $"(the policy denies what this workload needs: report it, do not weaken the policy){Tail(errors)}");
        if (exit is null)
            throw new WorkloadFailedException($"{workload.Key}: still running under MIS after {limit.TotalSeconds:0} s (killed){Tail(errors)}");
        if (exit.ExitCode != 0)
            throw new WorkloadFailedException($"{workload.Key}: {exit} under MIS{Tail(errors)}");
        return new MisRun(Elapsed(workload, WorkloadMode.Mis, text, File.ReadAllText(errors)), notifications, rss);
    }

    private static double RunOutside(
        string floor, WorkloadMode mode, WorkloadBenchOptions options, WorkloadDefinition workload,
        IReadOnlyList<string> command, IReadOnlyList<string> environment, string work)
    {
        var start = new ProcessStartInfo(floor)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = work,
        };
        foreach (string a in (string[])[mode switch
        {
            WorkloadMode.Bare => "bare",
            WorkloadMode.Floor => "continue",
            WorkloadMode.FloorAddfd => "addfd",
            _ => throw new ArgumentOutOfRangeException(nameof(mode)),
        }, options.User, work, "--threads", options.FloorThreads.ToString(CultureInfo.InvariantCulture), "--", .. command])
            start.ArgumentList.Add(a);
        // The same environment MIS gives the workload, nothing of this process's own.
        start.Environment.Clear();
        foreach (string pair in environment)
        {
            int eq = pair.IndexOf('=', StringComparison.Ordinal);
            start.Environment[pair[..eq]] = pair[(eq + 1)..];
        }
        using var process = Process.Start(start) ?? throw new WorkloadFailedException($"{workload.Key}: could not start {floor}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(options.RunLimit))
        {
            process.Kill(entireProcessTree: true);
            throw new WorkloadFailedException($"{workload.Key}: still running {WorkloadMath.Name(mode)} after {options.RunLimit.TotalSeconds:0} s (killed)");
        }
        process.WaitForExit();
        string err = stderr.GetAwaiter().GetResult();
        if (process.ExitCode != 0)
            throw new WorkloadFailedException($"{workload.Key}: exited with {process.ExitCode} {WorkloadMath.Name(mode)}{TailOf(err)}");
        return Elapsed(workload, mode, stdout.GetAwaiter().GetResult(), err);
    }

    /// <summary>The workload's own figure: its last <c>elapsed_ns N</c> line.</summary>
    internal static double Elapsed(WorkloadDefinition workload, WorkloadMode mode, string stdout, string stderr)
    {
        string? line = stdout.Split('\n').LastOrDefault(l => l.StartsWith(ElapsedPrefix, StringComparison.Ordinal));
        if (line is null || !long.TryParse(line.AsSpan(ElapsedPrefix.Length).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out long ns) || ns <= 0)
            throw new WorkloadFailedException($"{workload.Key}: printed no \"{ElapsedPrefix.Trim()} N\" line {WorkloadMath.Name(mode)}{TailOf(stderr)}");
        return ns;
    }

    private static IReadOnlyList<string> Environment(WorkloadDefinition workload, WorkloadFiles files) =>
        // mis run's environment, with HOME the workload's own directory (git reads and may write there).
        [.. LaunchSpec.DefaultEnvironment.Where(e => !e.StartsWith("HOME=", StringComparison.Ordinal)), $"HOME={files.Work}", .. workload.Environment];

    private static WorkloadFiles Prepare(string root, WorkloadBenchOptions options)
    {
        const UnixFileMode Readable = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
        const UnixFileMode Enterable = Readable | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
        File.SetUnixFileMode(root, Enterable); // CreateTempSubdirectory makes it 0700: the workload's user must get in
        string Dir(string name)
        {
            string path = Path.Combine(root, name);
            Directory.CreateDirectory(path);
            File.SetUnixFileMode(path, Enterable);
            return path;
        }
        string scripts = Dir("scripts");
        foreach (var (name, content) in WorkloadCatalog.Sources())
        {
            using (content)
            using (var file = File.Create(Path.Combine(scripts, name)))
                content.CopyTo(file);
            File.SetUnixFileMode(Path.Combine(scripts, name), Readable);
        }

        // The directory walk's tree: 37 files per leaf directory, ten leaves per top directory.
        string tree = Dir("tree");
        int leaves = Math.Max(1, options.Sizes.TreeFiles / 37);
        for (int i = 0; i < options.Sizes.TreeFiles; i++)
        {
            int leaf = i % leaves;
            string dir = Path.Combine(tree, $"d{leaf / 10}", $"s{leaf % 10}");
            if (i < leaves)
                Directory.CreateDirectory(dir);
            File.WriteAllText(Path.Combine(dir, $"file{i}.txt"), "x\n");
        }

        string readerFiles = Dir("reader");
        var block = new byte[2048];
        new Random(1).NextBytes(block);
        for (int i = 0; i < options.Sizes.ReaderFiles; i++)
            File.WriteAllBytes(Path.Combine(readerFiles, $"f{i}"), block);

        string work = Dir("work");
        Chown(work, options.User);
        return new WorkloadFiles(scripts, tree, readerFiles, work, NativeTool("mis-workload-reader"));
    }

    private static void Chown(string path, string user)
    {
        // chown(1) resolves the account through NSS as mis-launch does; "user:" is its login group.
        using var chown = Process.Start(new ProcessStartInfo("chown", [$"{user}:", path]) { RedirectStandardError = true })!;
        string error = chown.StandardError.ReadToEnd();
        chown.WaitForExit();
        if (chown.ExitCode != 0)
            throw new InvalidOperationException($"chown {user}: {path}: {error.Trim()}");
    }

    private static void RequireTools()
    {
        (string Path, string Package)[] tools =
        [
            (WorkloadCatalog.Python, "python3"), ("/bin/bash", "bash"), ("/usr/bin/gcc", "gcc"), ("/usr/bin/git", "git"), ("/bin/true", "coreutils"),
        ];
        var missing = tools.Where(t => !File.Exists(t.Path)).ToList();
        if (missing.Count > 0)
            throw new InvalidOperationException(
                $"the workloads need {string.Join(", ", missing.Select(t => t.Path))}: apt-get install {string.Join(" ", missing.Select(t => t.Package).Distinct())}");
    }

    /// <summary>A C program of native/bench, beside the assemblies (native/native.targets copies it there).</summary>
    private static string NativeTool(string name)
    {
        string path = Path.Combine(AppContext.BaseDirectory, name);
        if (!File.Exists(path))
            throw new FileNotFoundException($"{name} not found at {path} (the build puts it beside the assemblies: native/native.targets)", path);
        return path;
    }

    private static string LoadAverage()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "unknown";
        }
    }

    private static long ProcStatusKb(string key)
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(key, StringComparison.Ordinal))
                return long.Parse(line[key.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
        return 0;
    }

    private static string Tail(string path) => TailOf(File.Exists(path) ? File.ReadAllText(path) : "");

    private static string TailOf(string stderr)
    {
        string[] lines = stderr.TrimEnd().Split('\n');
        return stderr.Trim().Length == 0 ? "" : $"; its stderr ends: {string.Join(" | ", lines.TakeLast(3))}";
    }
}

/// <summary>A workload's run went wrong; the message says which and how (its row fails, the others go on).</summary>
public sealed class WorkloadFailedException(string message) : Exception(message);
