using System.Text;

namespace Mis.Enforcer.Run;

/// <summary>
/// Collects a learning-mode run's syscall stream per thread and writes one trace file per thread
/// (<c>mis run --learn --traces DIR</c>): whitespace-separated decimal syscall numbers on one line,
/// the form public syscall-trace data sets such as ADFA-LD use, so that the same reader serves both.
/// </summary>
public sealed class TraceRecorder
{
    private readonly Dictionary<int, ThreadSyscalls> _threads = [];
    private readonly Lock _gate = new();

    private sealed class ThreadSyscalls(int pid)
    {
        internal int Pid { get; } = pid;
        internal string Comm { get; set; } = "";
        internal List<int> Syscalls { get; } = [];
    }

    /// <summary>Threads seen so far.</summary>
    internal int Threads
    {
        get
        {
            lock (_gate)
                return _threads.Count;
        }
    }

    /// <summary>Appends one syscall of thread <paramref name="tid"/>.</summary>
    public void Add(int pid, int tid, string comm, int syscall)
    {
        lock (_gate)
        {
            if (!_threads.TryGetValue(tid, out var t))
                _threads[tid] = t = new ThreadSyscalls(pid);
            // The last name wins: a thread's first syscalls belong to mis-launch, before the exec.
            if (comm.Length > 0)
                t.Comm = comm;
            t.Syscalls.Add(syscall);
        }
    }

    /// <summary>Each thread's syscalls so far, in thread id order.</summary>
    public IReadOnlyList<ThreadTrace> Snapshot()
    {
        lock (_gate)
            return [.. _threads.OrderBy(kv => kv.Key).Select(kv => new ThreadTrace(kv.Key, kv.Value.Comm, [.. kv.Value.Syscalls]))];
    }

    /// <summary>
    /// Writes <c>DIR/TID-COMM.trace</c> per thread (the directory is created) and returns the paths.
    /// </summary>
    public IReadOnlyList<string> WriteTo(string directory) => Write(Snapshot(), directory);

    /// <summary>Writes <paramref name="threads"/> as <c>DIR/TID-COMM.trace</c> files (the directory is created) and returns the paths.</summary>
    public static IReadOnlyList<string> Write(IEnumerable<ThreadTrace> threads, string directory)
    {
        Directory.CreateDirectory(directory);
        var written = new List<string>();
        foreach (var t in threads)
        {
            string path = Path.Combine(directory, $"{t.Tid}-{FileSafe(t.Comm)}.trace");
            var line = new StringBuilder(t.Syscalls.Count * 4);
            foreach (int nr in t.Syscalls)
                line.Append(nr).Append(' ');
            if (line.Length > 0)
                line.Length--;
            File.WriteAllText(path, line.Append('\n').ToString());
            written.Add(path);
        }
        return written;
    }

    private static string FileSafe(string comm)
    {
        string safe = new(comm.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_').ToArray());
        return safe.Length == 0 ? "task" : safe;
    }
}

/// <summary>One thread's syscalls.</summary>
/// <param name="Tid">The thread.</param>
/// <param name="Comm">Its command name (the last one: its program's, after an exec).</param>
/// <param name="Syscalls">Its syscall numbers (x86-64), in order.</param>
public sealed record ThreadTrace(int Tid, string Comm, IReadOnlyList<int> Syscalls);
