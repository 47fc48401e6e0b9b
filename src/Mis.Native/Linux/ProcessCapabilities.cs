namespace Mis.Native;

/// <summary>The effective capability set of a process, from <c>/proc/PID/status</c>.</summary>
public sealed class ProcessCapabilities
{
    /// <summary>CAP_SYS_ADMIN.</summary>
    public const int SysAdmin = 21;
    /// <summary>CAP_PERFMON (Linux 5.8+).</summary>
    public const int Perfmon = 38;
    /// <summary>CAP_BPF (Linux 5.8+).</summary>
    public const int Bpf = 39;

    private readonly ulong _effective;

    private ProcessCapabilities(ulong effective) => _effective = effective;

    /// <summary>The effective set of this process.</summary>
    public static ProcessCapabilities Current() => Of("self");

    /// <summary>The effective set of <paramref name="pid"/> ("self" for this process).</summary>
    public static ProcessCapabilities Of(string pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("CapEff:", StringComparison.Ordinal))
                return new ProcessCapabilities(Convert.ToUInt64(line[7..].Trim(), 16));
        throw new InvalidDataException($"/proc/{pid}/status has no CapEff line");
    }

    /// <summary>Whether capability number <paramref name="capability"/> is effective.</summary>
    public bool Has(int capability) => (_effective & (1UL << capability)) != 0;

    /// <summary>The raw effective mask.</summary>
    public ulong Effective => _effective;
}
