using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;

namespace Mis.Native.Bpf;

/// <summary>
/// Captures libbpf's diagnostic output (including the verifier log it prints when a load fails)
/// so that a load error can say why, instead of libbpf writing it to stderr behind our back.
/// Messages are kept per thread: libbpf calls the print callback on the thread doing the work.
/// </summary>
public static unsafe class LibbpfLog
{
    private const int MaxLines = 200;
    private const int LevelDebug = 2;

    // Big enough for a whole verifier log, so one buffer for the process, taken under a lock.
    private const int BufferSize = 1 << 20;
    private static readonly Lock s_bufferGate = new();
    private static byte* s_buffer;

    [ThreadStatic]
    private static List<string>? t_lines;

    private static int s_installed;

    /// <summary>Installs the print callback once per process.</summary>
    internal static void EnsureInstalled()
    {
        if (Interlocked.Exchange(ref s_installed, 1) == 0)
            Libbpf.SetPrint(&OnPrint);
    }

    /// <summary>Starts a fresh capture on this thread.</summary>
    internal static void Clear() => t_lines?.Clear();

    /// <summary>The lines captured on this thread since the last <see cref="Clear"/>.</summary>
    internal static IReadOnlyList<string> Lines => t_lines ?? (IReadOnlyList<string>)[];

    /// <summary>The last <paramref name="count"/> captured lines, joined, for an error message.</summary>
    internal static string Tail(int count = 12)
    {
        var lines = Lines;
        return string.Join('\n', lines.Skip(Math.Max(0, lines.Count - count)));
    }

    [UnmanagedCallersOnly]
    private static int OnPrint(int level, nint format, nint args)
    {
        if (level >= LevelDebug)
            return 0;
        // va_list is a pointer to the register save area on x86-64 and arm64 when passed as an
        // argument, so it can be handed straight to vsnprintf, which consumes it once: the
        // buffer must hold a whole verifier log, whose last lines say why a load failed.
        string text;
        lock (s_bufferGate)
        {
            if (s_buffer == null)
                s_buffer = (byte*)NativeMemory.Alloc(BufferSize);
            int written = Vsnprintf(s_buffer, BufferSize, format, args);
            if (written <= 0)
                return 0;
            text = Encoding.UTF8.GetString(s_buffer, Math.Min(written, BufferSize - 1)).TrimEnd('\n');
        }
        var lines = t_lines ??= [];
        foreach (var line in text.Split('\n'))
        {
            if (lines.Count == MaxLines)
                lines.RemoveAt(0);
            lines.Add(line);
        }
        return 0;
    }

    [DllImport("libc", EntryPoint = "vsnprintf")]
    private static extern int Vsnprintf(byte* buffer, nuint size, nint format, nint args);
}
