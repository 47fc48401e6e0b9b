namespace Mis.Anomaly.Traces;

/// <summary>One thread's syscall sequence, as read from a trace file.</summary>
/// <param name="Source">The file it came from.</param>
/// <param name="Line">Its line in a <c>.jsonl</c> file; 0 for a plain trace file (one trace per file).</param>
/// <param name="Syscalls">Syscall numbers in order.</param>
public sealed record Trace(string Source, int Line, int[] Syscalls)
{
    /// <summary>The label a <c>.jsonl</c> line carries ("normal", "attack", ...), if any.</summary>
    public string? Label { get; init; }

    /// <summary>The command that produced it, if recorded.</summary>
    public string? Command { get; init; }

    /// <summary>The thread id it was recorded from, if recorded.</summary>
    public int? Tid { get; init; }

    /// <summary>
    /// What the trace belongs to: the directory of a plain trace file (one run writes one directory),
    /// the file of a <c>.jsonl</c> line. Run-level evaluation takes the maximum over a group.
    /// </summary>
    public string Group => Line == 0 ? Path.GetDirectoryName(Source) ?? "" : Source;

    /// <summary>"file" or "file:line", for messages and score tables.</summary>
    public string Name => Line == 0 ? Source : $"{Source}:{Line}";
}

/// <summary>Bad trace input; the message names the file and line (<c>file:line: what is wrong</c>).</summary>
public sealed class TraceFormatException(string file, int line, string problem)
    : FormatException($"{file}:{line}: {problem}")
{
    /// <summary>The offending file.</summary>
    public string File { get; } = file;

    /// <summary>The offending line (1-based).</summary>
    public int LineNumber { get; } = line;
}
