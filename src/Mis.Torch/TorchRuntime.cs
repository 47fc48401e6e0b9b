using TorchSharp;

namespace Mis.Torch;

/// <summary>
/// Loads TorchSharp's native backend up front, so that a machine where it cannot load fails with one
/// message that names the fix instead of a <see cref="TypeInitializationException"/> from deep inside
/// the first tensor operation.
/// </summary>
/// <remarks>
/// TorchSharp 0.107's <c>libLibTorchSharp.so</c> is built against GCC 13's libstdc++ (it needs
/// <c>GLIBCXX_3.4.32</c>); Debian 12 ships GCC 12's. The build patches the library in every output
/// (Directory.Build.targets runs <c>build/torchsharp/fix-libtorchsharp.sh</c>), which needs
/// <c>patchelf</c> and a C compiler.
/// </remarks>
public static class TorchRuntime
{
    /// <summary>What to do when the native backend does not load; part of the exception message.</summary>
    internal const string FixHint =
        "TorchSharp's native library (runtimes/linux-x64/native/libLibTorchSharp.so) failed to load. " +
        "On Debian 12 and other systems whose libstdc++ lacks GLIBCXX_3.4.32, the build patches it " +
        "(build/torchsharp/fix-libtorchsharp.sh, run from Directory.Build.targets): install its tools " +
        "with `apt-get install patchelf gcc`, then rebuild so the patched library and " +
        "libmis_glibcxx_shim.so are copied next to the application. Check with " +
        "`readelf -V <output>/runtimes/linux-x64/native/libLibTorchSharp.so` that GLIBCXX_3.4.32 is marked WEAK.";

    private static readonly Lazy<bool> Loaded = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>
    /// Makes sure the TorchSharp CPU backend is loaded; cheap after the first call.
    /// </summary>
    /// <exception cref="InvalidOperationException">
    /// The native backend could not be loaded; the message says how to fix it and the inner exception
    /// carries TorchSharp's own load trace.
    /// </exception>
    public static void EnsureLoaded() => _ = Loaded.Value;

    private static bool Load()
    {
        try
        {
            torch.InitializeDeviceType(DeviceType.CPU);
            return true;
        }
        catch (Exception ex) when (ex is TypeInitializationException or NotSupportedException or DllNotFoundException
                                       or EntryPointNotFoundException or BadImageFormatException)
        {
            throw new InvalidOperationException($"{FixHint} ({ex.GetType().Name}: {Innermost(ex).Message})", ex);
        }
    }

    private static Exception Innermost(Exception ex)
    {
        while (ex.InnerException is { } inner)
            ex = inner;
        return ex;
    }
}
