using System.Globalization;

namespace Mis.Bench.Workloads;

/// <summary>How big each workload of <c>mis bench --workloads</c> is.</summary>
public sealed record WorkloadSizes
{
    /// <summary>Subdirectory of the Python standard library the file walk reads; null: all of it (about 1,400 files).</summary>
    public string? FileWalkSubdirectory { get; init; }

    /// <summary>Files of the generated tree the directory walk stats.</summary>
    public int TreeFiles { get; init; } = 3_700;

    /// <summary>Times the exec loop runs /bin/true.</summary>
    public int Execs { get; init; } = 300;

    /// <summary>Times gcc compiles the small C file.</summary>
    public int Compiles { get; init; } = 3;

    /// <summary>Files the git workload adds and commits.</summary>
    public int GitFiles { get; init; } = 50;

    /// <summary>Opens (each with a read to the end and a close) per reader thread.</summary>
    public int ReaderOpensPerThread { get; init; } = 5_000;

    /// <summary>Files the reader threads cycle through.</summary>
    public int ReaderFiles { get; init; } = 64;

    /// <summary>The full sizes (the issue's workloads).</summary>
    public static WorkloadSizes Full { get; } = new();

    /// <summary>Small enough for a test: every figure is produced, none is meaningful.</summary>
    public static WorkloadSizes Quick { get; } = new()
    {
        FileWalkSubdirectory = "json",
        TreeFiles = 60,
        Execs = 5,
        Compiles = 1,
        GitFiles = 5,
        ReaderOpensPerThread = 100,
        ReaderFiles = 8,
    };
}

/// <summary>One workload: what it runs and the target its ratio (MIS / bare) is held to.</summary>
/// <param name="Key">Its snake_case name in JSON.</param>
/// <param name="Name">What a person reads in the table.</param>
/// <param name="Target">The largest acceptable MIS / bare ratio; null: no target of its own.</param>
/// <param name="Command">argv, given the bench's prepared directory.</param>
/// <param name="Environment">Added to the launch environment (NAME=value), the same in every mode.</param>
public sealed record WorkloadDefinition(
    string Key, string Name, double? Target, Func<WorkloadFiles, IReadOnlyList<string>> Command, IReadOnlyList<string> Environment)
{
    /// <summary>The target as printed ("≤ 2.0×", or "-").</summary>
    public string TargetText => Target is double t ? $"≤ {t.ToString("0.0#", CultureInfo.InvariantCulture)}×" : "-";
}

/// <summary>Where the prepared inputs of one bench run are (all readable by the workload's user).</summary>
/// <param name="Scripts">The workload sources (bench/workloads, extracted).</param>
/// <param name="Tree">The generated tree of the directory walk.</param>
/// <param name="ReaderFiles">The files f0..fN-1 the reader cycles through.</param>
/// <param name="Work">The working directory, owned by the workload's user (gcc's output, git's repositories, HOME).</param>
/// <param name="Reader">mis-workload-reader.</param>
public sealed record WorkloadFiles(string Scripts, string Tree, string ReaderFiles, string Work, string Reader);

/// <summary>The workloads <c>mis bench --workloads</c> runs, in order, with the issue's targets.</summary>
public static class WorkloadCatalog
{
    /// <summary>The Python every Python workload runs (Debian's; the one whose standard library is walked).</summary>
    public const string Python = "/usr/bin/python3";

    /// <summary>Key of the one-thread reader.</summary>
    public const string Reader1 = "reader_1_thread";

    /// <summary>Key of the four-thread reader (four times the work of <see cref="Reader1"/>).</summary>
    public const string Reader4 = "reader_4_threads";

    /// <summary>The workloads for <paramref name="sizes"/>.</summary>
    public static IReadOnlyList<WorkloadDefinition> For(WorkloadSizes sizes)
    {
        ArgumentNullException.ThrowIfNull(sizes);
        string S(WorkloadFiles f, string name) => Path.Combine(f.Scripts, name);
        string N(int n) => n.ToString(CultureInfo.InvariantCulture);
        return
        [
            new("file_walk", "file walk (Python reads the stdlib's files)", 2.0,
                f => [Python, S(f, "file_walk.py"), .. sizes.FileWalkSubdirectory is { } sub ? [sub] : Array.Empty<string>()], []),
            new("directory_walk", $"directory walk (os.walk + stat, {sizes.TreeFiles} files)", 1.5,
                f => [Python, S(f, "dir_walk.py"), f.Tree], []),
            new("exec_loop", $"exec loop (bash runs /bin/true {sizes.Execs}×)", 1.2,
                f => ["/bin/bash", S(f, "exec_loop.sh"), N(sizes.Execs)], []),
            new("python_imports", "Python imports 13 stdlib packages", 1.15,
                f => [Python, S(f, "imports.py")], []),
            new("c_compile", $"gcc compiles a small C file {sizes.Compiles}×", 1.15,
                f => ["/bin/bash", S(f, "compile.sh"), S(f, "hello.c"), N(sizes.Compiles)], []),
            new("git", $"git init/add/commit/status/log/diff ({sizes.GitFiles} files)", null,
                f => ["/bin/bash", S(f, "git.sh"), N(sizes.GitFiles)],
                // git refuses to commit without an identity; from the environment it reads no file for it.
                ["GIT_AUTHOR_NAME=MIS bench", "GIT_AUTHOR_EMAIL=bench@mis.invalid",
                 "GIT_COMMITTER_NAME=MIS bench", "GIT_COMMITTER_EMAIL=bench@mis.invalid"]),
            new(Reader1, $"C reader, 1 thread × {sizes.ReaderOpensPerThread} opens", null,
                f => [f.Reader, "1", N(sizes.ReaderOpensPerThread), f.ReaderFiles, N(sizes.ReaderFiles)], []),
            new(Reader4, $"C reader, 4 threads × {sizes.ReaderOpensPerThread} opens", null,
                f => [f.Reader, "4", N(sizes.ReaderOpensPerThread), f.ReaderFiles, N(sizes.ReaderFiles)], []),
        ];
    }

    /// <summary>The workload sources (bench/workloads), embedded in this assembly, by file name.</summary>
    internal static IEnumerable<(string Name, Stream Content)> Sources()
    {
        var assembly = typeof(WorkloadCatalog).Assembly;
        const string prefix = "workloads/";
        foreach (string resource in assembly.GetManifestResourceNames().Where(n => n.StartsWith(prefix, StringComparison.Ordinal)))
            yield return (resource[prefix.Length..], assembly.GetManifestResourceStream(resource)!);
    }
}
