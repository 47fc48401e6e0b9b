using System.Text;
using Mis.Anomaly.Traces;

namespace Mis.Anomaly.Corpus;

/// <summary>One run the corpus builder asks for: run Command in learning mode, write per-thread traces to TracesDirectory.</summary>
/// <param name="Command">The command and its arguments.</param>
/// <param name="TracesDirectory">Where the per-thread trace files go.</param>
/// <param name="WorkingDirectory">The workload's working directory.</param>
/// <param name="Environment">The workload's environment (NAME=value).</param>
/// <param name="Timeout">Kill the workload's cgroup after this long.</param>
public sealed record CorpusRun(IReadOnlyList<string> Command, string TracesDirectory, string WorkingDirectory,
    IReadOnlyList<string> Environment, TimeSpan Timeout);

/// <summary>How a corpus run went.</summary>
/// <param name="ExitStatus">The workload's exit status (137 when the timeout killed it).</param>
/// <param name="EventsDropped">Kernel events lost (gaps in the traces).</param>
public sealed record CorpusRunResult(int ExitStatus, ulong EventsDropped);

/// <summary>What to build.</summary>
public sealed record CorpusOptions
{
    /// <summary>Runs per workload; null uses each workload's own number.</summary>
    public int? Runs { get; init; }

    /// <summary>Only these workloads (by name); null for all.</summary>
    public IReadOnlyCollection<string>? Only { get; init; }

    /// <summary>Cut each trace to its first N syscalls (0: keep all); keeps a committed sample small.</summary>
    public int MaxSyscallsPerTrace { get; init; }

    /// <summary>
    /// Pack each run into one <c>RUN.jsonl.gz</c> (a line per thread, with label, command and tid)
    /// instead of a directory of plain trace files: the committed sample's form, about 15 times smaller.
    /// </summary>
    public bool Pack { get; init; }

    /// <summary>A .NET program the workload user can run, for the dotnet workload.</summary>
    public string? DotnetApp { get; init; }
}

/// <summary>A built corpus, per run.</summary>
/// <param name="Runs">(workload, label, split, directory, exit status, traces, syscalls, dropped events) per run.</param>
public sealed record CorpusReport(IReadOnlyList<(string Workload, CorpusLabel Label, string Split, string Directory, int ExitStatus, int Traces, long Syscalls, ulong Dropped)> Runs);

/// <summary>
/// Builds the labelled corpus: every workload of <see cref="CorpusWorkloads"/> run several times
/// under learning mode. Layout: <c>OUT/normal/train/NAME-K/</c>, <c>OUT/normal/test/NAME-K/</c> (runs
/// 1, 4, 7, … of a normal workload, never trained on) and <c>OUT/attack/NAME-K/</c>, one trace file per
/// thread, plus <c>OUT/MANIFEST.md</c>.
/// </summary>
public static class CorpusBuilder
{
    /// <summary>Runs the workloads through <paramref name="run"/> (which runs a command under MIS) and writes the corpus.</summary>
    public static CorpusReport Build(string outDir, Func<CorpusRun, CorpusRunResult> run, CorpusOptions options,
        IProgress<(int Done, int Total, string Label)>? progress = null)
    {
        var workloads = CorpusWorkloads.All.Where(w => options.Only is null || options.Only.Contains(w.Name)).ToList();
        if (options.Only is not null && options.Only.Except(workloads.Select(w => w.Name)).FirstOrDefault() is { } unknown)
            throw new ArgumentException($"unknown workload '{unknown}' (known: {string.Join(", ", CorpusWorkloads.All.Select(w => w.Name))})");
        var plan = workloads.SelectMany(w => Enumerable.Range(0, options.Runs ?? w.Runs).Select(k => (Workload: w, Variant: k))).ToList();

        string scratchRoot = Path.Combine(Path.GetTempPath(), $"mis-corpus-{Environment.ProcessId}");
        Directory.CreateDirectory(scratchRoot);
        WorldWritable(scratchRoot);
        var rows = new List<(string, CorpusLabel, string, string, int, int, long, ulong)>();
        using var servers = new LoopbackServers();
        try
        {
            for (int i = 0; i < plan.Count; i++)
            {
                var (w, k) = plan[i];
                progress?.Report((i, plan.Count, $"{w.Name}-{k}"));
                string scratch = Path.Combine(scratchRoot, $"{w.Name}-{k}");
                Directory.CreateDirectory(scratch);
                WorldWritable(scratch);
                var env = new CorpusEnv(scratch, servers.HttpPort, servers.ShellPort, servers.SinkPort, options.DotnetApp, k);
                if (!w.Available(env))
                    continue;
                string split = w.Label == CorpusLabel.Attack ? "attack" : k % 3 == 1 ? "normal/test" : "normal/train";
                string dir = Path.Combine(outDir, split, $"{w.Name}-{k}");
                if (Directory.Exists(dir))
                    Directory.Delete(dir, recursive: true);
                if (File.Exists(dir + ".jsonl.gz"))
                    File.Delete(dir + ".jsonl.gz");
                var result = run(new CorpusRun(["/bin/bash", "-c", w.Script(env)], dir, scratch,
                    ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", $"HOME={scratch}"], w.Timeout));
                Directory.CreateDirectory(dir);
                if (options.MaxSyscallsPerTrace > 0)
                    Truncate(dir, options.MaxSyscallsPerTrace);
                var traces = TraceReader.Read(dir);
                long syscalls = traces.Sum(t => (long)t.Syscalls.Length);
                string written = options.Pack ? PackRun(dir, traces, w) : dir;
                rows.Add((w.Name, w.Label, split, Path.GetRelativePath(outDir, written), result.ExitStatus, traces.Count, syscalls, result.EventsDropped));
                Directory.Delete(scratch, recursive: true);
            }
            progress?.Report((plan.Count, plan.Count, "done"));
        }
        finally
        {
            Directory.Delete(scratchRoot, recursive: true);
        }
        var report = new CorpusReport(rows);
        File.WriteAllText(Path.Combine(outDir, "MANIFEST.md"), Manifest(report));
        return report;
    }

    // 0777: the workload runs as nobody and works in its scratch directory.
    private static void WorldWritable(string dir)
    {
        if (!OperatingSystem.IsWindows())
            File.SetUnixFileMode(dir, (UnixFileMode)0x1FF);
    }

    // One gzip'd JSON line per thread; the plain files are removed.
    private static string PackRun(string dir, List<Trace> traces, CorpusWorkload w)
    {
        string packed = dir + ".jsonl.gz";
        using (var gz = new System.IO.Compression.GZipStream(File.Create(packed), System.IO.Compression.CompressionLevel.SmallestSize))
        using (var writer = new StreamWriter(gz))
        {
            foreach (var t in traces)
            {
                var name = Path.GetFileNameWithoutExtension(t.Source);
                int tid = int.TryParse(name.Split('-')[0], out int n) ? n : 0;
                var line = new System.Text.Json.Nodes.JsonObject
                {
                    ["label"] = w.Label.ToString().ToLowerInvariant(),
                    ["command"] = $"{w.Name}: {name}",
                    ["tid"] = tid,
                    ["syscalls"] = new System.Text.Json.Nodes.JsonArray([.. t.Syscalls.Select(s => System.Text.Json.Nodes.JsonValue.Create(s))]),
                };
                writer.WriteLine(line.ToJsonString());
            }
        }
        Directory.Delete(dir, recursive: true);
        return packed;
    }

    private static void Truncate(string dir, int max)
    {
        foreach (var file in TraceReader.Files(dir))
        {
            var syscalls = TraceReader.ReadFile(file)[0].Syscalls;
            if (syscalls.Length > max)
                File.WriteAllText(file, string.Join(' ', syscalls.Take(max)) + "\n");
        }
    }

    /// <summary>The corpus's MANIFEST.md: one row per run, and totals per class.</summary>
    internal static string Manifest(CorpusReport report)
    {
        var s = new StringBuilder();
        s.AppendLine("# Corpus manifest").AppendLine();
        s.AppendLine("Written by `./mis anomaly corpus`. One directory per run, one trace file per thread (whitespace-separated syscall numbers).").AppendLine();
        s.AppendLine("| split | runs | traces | syscalls |").AppendLine("| --- | ---: | ---: | ---: |");
        foreach (var g in report.Runs.GroupBy(r => r.Split).OrderBy(g => g.Key, StringComparer.Ordinal))
            s.AppendLine($"| {g.Key} | {g.Count()} | {g.Sum(r => r.Traces)} | {g.Sum(r => r.Syscalls)} |");
        s.AppendLine().AppendLine("| run | label | exit | traces | syscalls | events lost |").AppendLine("| --- | --- | ---: | ---: | ---: | ---: |");
        foreach (var r in report.Runs)
            s.AppendLine($"| {r.Directory} | {r.Label.ToString().ToLowerInvariant()} | {r.ExitStatus} | {r.Traces} | {r.Syscalls} | {r.Dropped} |");
        return s.ToString();
    }
}
