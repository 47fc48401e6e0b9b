using System.CommandLine;
using Microsoft.Win32.SafeHandles;
using Mis.Enforcer.Configuration;
using Mis.Enforcer.Confinement;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Policy;
using Mis.Enforcer.Run;
using Mis.Enforcer.Session;
using Mis.Native.Bpf;

namespace Mis.Cli.Commands;

/// <summary><c>mis run</c>: one command under real kernel enforcement.</summary>
public static class RunCommand
{
    /// <summary>Exit status when MIS itself could not run the command (as docker run uses it).</summary>
    internal const int MisFailed = 125;

    internal static Command Create()
    {
        var policy = new Option<FileInfo?>("--policy") { HelpName = "FILE", Description = "Policy TOML (see config/policy.example.toml); default: the built-in policy." };
        var config = ConfigOption.Create();
        var events = new Option<FileInfo?>("--events") { HelpName = "FILE.jsonl", Description = "Write every enforcement event as a JSON line to this file (schema in README)." };
        var user = new Option<string?>("--user") { HelpName = "NAME", Description = $"Run the command as this unprivileged account (default: {WorkloadIdentity.DefaultUserName})." };
        var asRoot = new Option<bool>("--as-root") { Description = "Keep uid 0, still without any capability. Weaker: root-owned files stay writable." };
        var learn = new Option<bool>("--learn") { Description = "Learning mode: violations are denied and recorded but do not escalate DEFCON; the syscall stream is recorded." };
        var cwd = new Option<DirectoryInfo?>("--cwd") { HelpName = "DIR", Description = "Working directory of the command, entered as its user (default: the current directory)." };
        var env = new Option<string[]>("--env") { HelpName = "NAME=VALUE", Description = "NAME=VALUE to add to the command's minimal environment (repeatable).", AllowMultipleArgumentsPerToken = false };
        var traces = new Option<DirectoryInfo?>("--traces") { HelpName = "DIR", Description = "With --learn: write each thread's syscall sequence to DIR/TID-COMM.trace (whitespace-separated syscall numbers)." };
        var anomalyModel = new Option<FileInfo?>("--anomaly-model") { HelpName = "MODEL", Description = "With --learn: score each thread's live syscall stream with this model (mis anomaly train); above [policy] anomaly_threshold the cgroup is killed when kill_on_anomaly is true." };
        var fileBackend = new Option<string?>("--file-backend")
        {
            HelpName = "lsm|seccomp",
            Description = "Where opens, execs, file changes and signals are decided: lsm (BPF LSM hooks in the kernel, where mis doctor finds that lsm " +
                          "programs load; renames, xattrs and a few more stay with the supervisor) or seccomp (the seccomp user-notification supervisor). Default: lsm where the kernel allows it, else seccomp.",
        };
        fileBackend.AcceptOnlyFromAmong("lsm", "seccomp");
        var command = new Argument<string[]>("CMD") { Description = "The command and its arguments, after --.", Arity = ArgumentArity.OneOrMore };
        var run = new Command("run",
            "Run CMD in a fresh MIS-managed cgroup under the kernel enforcer: denied operations fail with EPERM and count as " +
            "violations; at DEFCON 4/3/2 every syscall is slowed, at DEFCON 1 the cgroup is killed. Prints a summary on stderr " +
            "and exits with CMD's status (137 when MIS killed it, 125 when MIS could not run it). Needs root.")
        {
            policy, config, events, user, asRoot, learn, cwd, env, traces, anomalyModel, fileBackend, command,
        };
        run.SetAction(result =>
        {
            var loaded = ConfigOption.Load(result.GetValue(config));
            if (loaded is null)
                return MisFailed;
            if (result.GetValue(user) is not null && result.GetValue(asRoot))
                return Fail("--user and --as-root exclude each other");
            if (!Environment.IsPrivilegedProcess)
                return Fail("needs root: it creates cgroups and loads BPF programs (run it with sudo)");
            WorkloadPolicy workloadPolicy;
            try
            {
                workloadPolicy = result.GetValue(policy) is { } file
                    ? PolicyFile.Load(file.FullName, loaded.Value.Config.Policy.MaxRuleTtlSecs)
                    : BuiltinPolicy.Create();
                workloadPolicy.DecisionCacheSize = loaded.Value.Config.Policy.DecisionCacheSize;
            }
            catch (ConfigException e)
            {
                return Fail(e.Message);
            }

            if ((result.GetValue(traces) is not null || result.GetValue(anomalyModel) is not null) && !result.GetValue(learn))
                return Fail("--traces and --anomaly-model need --learn (only learning mode reports every syscall)");
            Mis.Anomaly.AnomalyDetector? detector = null;
            if (result.GetValue(anomalyModel) is { } modelFile)
            {
                try
                {
                    detector = Mis.Anomaly.ModelFile.Load(modelFile.FullName);
                }
                catch (Exception e) when (e is InvalidDataException or FileNotFoundException or InvalidOperationException)
                {
                    return Fail(e.Message);
                }
            }
            using var ownedDetector = detector;
            var cmd = result.GetValue(command)!;
            var request = new RunRequest
            {
                Command = cmd,
                FileBackend = result.GetValue(fileBackend) switch { "lsm" => FileBackend.Lsm, "seccomp" => FileBackend.Seccomp, _ => null },
                Config = loaded.Value.Config,
                Policy = workloadPolicy,
                Learn = result.GetValue(learn),
                EventsPath = result.GetValue(events)?.FullName,
                TracesDirectory = result.GetValue(traces)?.FullName,
                AnomalyScorer = detector,
                WorkingDirectory = result.GetValue(cwd)?.FullName ?? Environment.CurrentDirectory,
                Environment = [.. LaunchSpec.DefaultEnvironment.Where(e => !(result.GetValue(env) ?? []).Any(x => SameName(x, e))),
                               .. result.GetValue(env) ?? []],
                Stdin = new SafeFileHandle(0, ownsHandle: false),
                Stdout = new SafeFileHandle(1, ownsHandle: false),
                Stderr = new SafeFileHandle(2, ownsHandle: false),
            };
            try
            {
                request = request with
                {
                    Identity = result.GetValue(asRoot) ? WorkloadIdentity.Root
                        : result.GetValue(user) is { } name ? WorkloadIdentity.User(name) : WorkloadIdentity.Default,
                };
                using var interrupt = new CancellationTokenSource();
                using var sigint = System.Runtime.InteropServices.PosixSignalRegistration.Create(
                    System.Runtime.InteropServices.PosixSignal.SIGINT, ctx => { ctx.Cancel = true; interrupt.Cancel(); });
                using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(
                    System.Runtime.InteropServices.PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; interrupt.Cancel(); });
                var outcome = WorkloadRunner.Run(request, interrupt.Token);
                Console.Error.Write(Summary(cmd, outcome, request.EventsPath));
                return outcome.ExitStatus;
            }
            catch (Exception e) when (e is KernelUnavailableException or BpfException or WorkloadLaunchException or ArgumentException or InvalidOperationException)
            {
                string hint = e switch
                {
                    KernelUnavailableException or BpfException => " (see ./mis doctor)",
                    WorkloadLaunchException when e.Message.Contains("chdir", StringComparison.Ordinal) =>
                        $" (the command runs as {request.Identity?.Name ?? WorkloadIdentity.DefaultUserName}: pass --cwd DIR with a directory it may enter)",
                    _ => "",
                };
                return Fail(e.Message + hint);
            }
        });
        return run;
    }

    private static bool SameName(string a, string b) =>
        a.IndexOf('=') is int i and > 0 && b.StartsWith(a[..(i + 1)], StringComparison.Ordinal);

    private static int Fail(string message)
    {
        Console.Error.WriteLine($"mis run: {message}");
        return MisFailed;
    }

    /// <summary>The one-screen summary printed after the command ends.</summary>
    internal static string Summary(IReadOnlyList<string> command, RunResult r, string? eventsPath)
    {
        var w = new StringWriter();
        w.WriteLine();
        w.WriteLine($"mis run: {string.Join(' ', command)}");
        string outcome = r.KilledByMis ? $"killed by MIS at DEFCON 1 (exit status {r.ExitStatus})"
            : r.Anomaly?.Killed is { } hit ? $"killed by MIS: anomaly score {hit.Score} > {r.Anomaly.Threshold} (exit status {r.ExitStatus})"
            : r.Exit.Signal is int s ? $"killed by signal {s} (exit status {r.ExitStatus})"
            : $"exited with status {r.ExitStatus}";
        w.WriteLine($"  result      {outcome}");
        w.WriteLine($"  files       decided by {(r.FileBackend == FileBackend.Lsm ? "the BPF LSM hooks (in the kernel)" : "the seccomp supervisor")}");
        string byOp = r.ViolationsByOperation.Count == 0 ? ""
            : " (" + string.Join(", ", r.ViolationsByOperation.OrderByDescending(kv => kv.Value).Select(kv => $"{kv.Key} {kv.Value}")) + ")";
        w.WriteLine($"  violations  {r.Violations}{byOp}");
        string ladder = r.Transitions.Count == 0 ? $"{r.Defcon} throughout"
            : "5" + string.Concat(r.Transitions.Select(t => $" -> {t.To} at violation {t.Violations}"));
        w.WriteLine($"  defcon      {ladder}");
        w.WriteLine($"  slowdown    {r.Slowdown.TotalMilliseconds:0.###} ms over {r.Syscalls:N0} syscalls");
        if (eventsPath is not null)
            w.WriteLine($"  events      {r.EventsWritten} written to {eventsPath}{(r.EventsDropped > 0 ? $" ({r.EventsDropped} lost: ring buffer full)" : "")}");
        if (r.Anomaly is { } a)
        {
            string worst = a.Worst is { } m ? $"max {m.Score}/1000 (thread {m.Tid} {m.Comm}, raw {m.Raw:G4})" : "no window scored";
            w.WriteLine($"  anomaly     {worst}; model {a.Model}, {a.WindowsScored} windows of {a.WindowSize} syscalls over {a.Threads} thread{(a.Threads == 1 ? "" : "s")}, threshold {a.Threshold}" +
                        (a.WindowsSkipped > 0 ? $", {a.WindowsSkipped} windows not scored ({a.Fault ?? "the model fell behind"})" : ""));
            if (a.Killed is { } k)
                w.WriteLine($"  killed on   window [{string.Join(' ', k.Window)}]");
        }
        if (r.TraceFiles.Count > 0)
            w.WriteLine($"  traces      {r.TraceFiles.Count} files in {Path.GetDirectoryName(r.TraceFiles[0])}");
        w.WriteLine($"  duration    {r.Duration.TotalSeconds:0.00} s; cgroup {r.CgroupId} removed, BPF programs detached");
        return w.ToString();
    }
}
