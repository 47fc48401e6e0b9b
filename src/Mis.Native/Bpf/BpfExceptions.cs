namespace Mis.Native.Bpf;

/// <summary>A libbpf operation failed. The subclass says at which lifecycle stage.</summary>
public abstract class BpfException : Exception
{
    private protected BpfException(string message, int errno, string libbpfLog)
        : base(Compose(message, errno, libbpfLog))
    {
        Errno = errno;
        LibbpfLog = libbpfLog;
    }

    /// <summary>The errno the kernel or libbpf reported (positive, e.g. 1 for EPERM).</summary>
    public int Errno { get; }

    /// <summary>What libbpf printed while failing (verifier log included), possibly empty.</summary>
    public string LibbpfLog { get; }

    private static string Compose(string message, int errno, string log) =>
        $"{message}: {Native.Errno.Describe(errno)}" + (log.Length > 0 ? $"\nlibbpf said:\n{log}" : "");
}

/// <summary>The BPF object could not be opened (parsed as ELF, BTF relocated).</summary>
public sealed class BpfOpenException(string message, int errno, string libbpfLog)
    : BpfException(message, errno, libbpfLog);

/// <summary>The kernel refused to load a program or create a map (verifier, permissions).</summary>
public sealed class BpfLoadException(string message, int errno, string libbpfLog)
    : BpfException(message, errno, libbpfLog);

/// <summary>A loaded program could not be attached to its hook.</summary>
public sealed class BpfAttachException(string message, int errno, string libbpfLog)
    : BpfException(message, errno, libbpfLog);
