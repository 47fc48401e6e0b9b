using System.Reflection;

namespace Mis.Enforcer.Bpf;

/// <summary>
/// The BPF objects compiled from <c>bpf/*.bpf.c</c> at build time and embedded in this assembly
/// (see <c>bpf/bpf.targets</c>). Where the build machine lacked clang or kernel BTF they are absent,
/// and <see cref="TryLoad"/> says why so the kernel backend can report itself unavailable.
/// </summary>
public static class EmbeddedBpf
{
    /// <summary>The capability probes used by <c>mis doctor</c>.</summary>
    internal const string Probe = "probe.bpf.o";

    /// <summary>Reads an embedded object; false with the reason when the build could not compile it.</summary>
    public static bool TryLoad(string objectName, out byte[] elf, out string whyMissing)
    {
        var assembly = typeof(EmbeddedBpf).Assembly;
        using var stream = assembly.GetManifestResourceStream("bpf/" + objectName);
        if (stream is null)
        {
            elf = [];
            whyMissing = assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
                             .FirstOrDefault(a => a.Key == "MisBpfMissingReason")?.Value
                         ?? $"bpf/{objectName} is not embedded in {assembly.GetName().Name}: is there a bpf/{Path.GetFileNameWithoutExtension(objectName)}.c?";
            return false;
        }
        elf = new byte[stream.Length];
        stream.ReadExactly(elf);
        whyMissing = "";
        return true;
    }
}
