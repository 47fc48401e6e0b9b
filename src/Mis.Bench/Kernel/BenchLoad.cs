namespace Mis.Bench.Kernel;

/// <summary>
/// Finds <c>mis-bench-load</c> (native/bench), the C load the benchmarks run: a tight getppid loop
/// and the operations mix. C, not managed code, so that the loop measures the kernel and MIS and
/// not a runtime's JIT, GC or own syscalls (a P/Invoke loop adds a transition per call and a GC
/// thread that makes syscalls of its own inside the measured process).
/// </summary>
public static class BenchLoad
{
    /// <summary>The binary beside the assemblies (native/native.targets copies it there).</summary>
    internal static string Path
    {
        get
        {
            string path = System.IO.Path.Combine(AppContext.BaseDirectory, "mis-bench-load");
            if (!File.Exists(path))
                throw new FileNotFoundException($"mis-bench-load not found at {path} (the build puts it beside the assemblies: native/native.targets)", path);
            return path;
        }
    }
}
