using System.Buffers.Binary;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Mis.Anomaly;
using Mis.Torch;
using TorchSharp;
using static TorchSharp.torch;

namespace Mis.Anomaly.Tests;

/// <summary>
/// TorchSharp works on this machine (tensors, an LSTM's forward and backward pass), and the build
/// step that makes libLibTorchSharp.so load on Debian 12 (build/torchsharp/fix-libtorchsharp.sh, run
/// from Directory.Build.targets) did its job, is idempotent and never writes to the NuGet cache.
/// </summary>
public sealed class TorchSharpTests
{
    private const string Glibcxx32 = "GLIBCXX_3.4.32";
    private const string ShimName = "libmis_glibcxx_shim.so";
    private const string LibName = "libLibTorchSharp.so";

    /// <summary>sha256 of runtimes/linux-x64/native/libLibTorchSharp.so as shipped in TorchSharp 0.107.0.</summary>
    private const string PristineSha256 = "cf33b1b0bb6bbb9754a768fb5c5d04d9f498603be50e73f55621a0b40ee608b8";

    [Fact]
    public void Tensors_DoArithmetic()
    {
        TorchRuntime.EnsureLoaded();
        using var scope = NewDisposeScope();

        var a = tensor(new float[] { 1, 2, 3, 4 });
        var b = tensor(new float[] { 10, 20, 30, 40 });
        Assert.Equal(new float[] { 21, 42, 63, 84 }, (a + b * 2).data<float>().ToArray());
        Assert.Equal(300f, (a * b).sum().item<float>());

        var m = tensor(new float[] { 1, 2, 3, 4 }, new long[] { 2, 2 });
        var id = eye(2, dtype: ScalarType.Float32);
        var product = m.matmul(m + id); // [[1,2],[3,4]] x [[2,2],[3,5]]
        Assert.Equal(new long[] { 2, 2 }, product.shape);
        Assert.Equal(new float[] { 8, 12, 18, 26 }, product.data<float>().ToArray());

        var mean = tensor(new double[] { 1.5, 2.5, 3.5 }).mean().item<double>();
        Assert.Equal(2.5, mean, 12);
    }

    [Fact]
    public void Lstm_ForwardAndBackward_AndOneSgdStepLowersTheLoss()
    {
        TorchRuntime.EnsureLoaded();
        using var scope = NewDisposeScope();
        manual_seed(20240607);

        const int batch = 3, steps = 5, features = 4, hidden = 8;
        var lstm = nn.LSTM(features, hidden, numLayers: 1, batchFirst: true);
        var head = nn.Linear(hidden, 1);
        var x = randn(batch, steps, features);
        var target = randn(batch, 1);

        Tensor Loss()
        {
            var (output, hN, cN) = lstm.call(x, null);
            Assert.Equal(new long[] { batch, steps, hidden }, output.shape);
            Assert.Equal(new long[] { 1, batch, hidden }, hN.shape);
            Assert.Equal(new long[] { 1, batch, hidden }, cN.shape);
            var prediction = head.call(output.select(1, -1));
            Assert.Equal(new long[] { batch, 1 }, prediction.shape);
            return nn.functional.mse_loss(prediction, target);
        }

        var parameters = lstm.parameters().Concat(head.parameters()).ToList();
        var optimizer = optim.SGD(parameters, 0.1);
        optimizer.zero_grad();
        var loss = Loss();
        var before = loss.item<float>();
        Assert.True(float.IsFinite(before) && before > 0, $"loss {before}");
        loss.backward();

        var named = lstm.named_parameters().Select(p => ("lstm." + p.name, p.parameter))
            .Concat(head.named_parameters().Select(p => ("head." + p.name, p.parameter)))
            .ToList();
        Assert.Contains(named, p => p.Item1 == "lstm.weight_ih_l0");
        foreach (var (name, parameter) in named)
        {
            var grad = parameter.grad;
            Assert.True(grad is not null, $"{name} has no gradient");
            Assert.Equal(parameter.shape, grad.shape);
            Assert.True(grad.isfinite().all().item<bool>(), $"{name} has a non-finite gradient");
            Assert.True(grad.abs().sum().item<float>() > 0, $"{name} has an all-zero gradient");
        }

        optimizer.step();
        float after;
        using (no_grad())
            after = Loss().item<float>();
        Assert.True(after < before, $"one SGD step did not lower the loss: {before} -> {after}");
    }

    [Fact]
    public void OutputLibrary_NoLongerHardRequiresGlibcxx32_UnlessTheSystemHasIt()
    {
        var native = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native");
        var lib = Path.Combine(native, LibName);
        Assert.True(File.Exists(lib), $"{lib} is missing");
        if (SystemLibstdcxxHasGlibcxx32(out var libstdcxx))
            return; // the build step leaves the library alone there, and it loads as shipped

        var elf = ElfInfo.Read(lib);
        var needs = elf.VersionNeeds.Where(v => v.Name == Glibcxx32).ToList();
        Assert.All(needs, v => Assert.True(v.IsWeak, $"{Glibcxx32} is still a hard requirement of {lib}, but {libstdcxx} lacks it"));
        foreach (var v in needs)
            Assert.Equal(0, elf.SymbolsWithVersionIndex(v.Index));
        if (needs.Count > 0)
        {
            Assert.Contains(ShimName, elf.Needed);
            Assert.True(File.Exists(Path.Combine(native, ShimName)), $"{ShimName} is not beside {lib}");
        }
    }

    [Fact]
    public void FixScript_IsIdempotent_AndLeavesTheNuGetCacheAlone()
    {
        var nuget = NuGetOriginal();
        var nugetBefore = File.ReadAllBytes(nuget);
        Assert.Equal(PristineSha256, Sha256(nugetBefore));

        using var temp = new TempDir();
        var lib = Path.Combine(temp.Path, LibName);
        // Like a build output: a hard link into the NuGet cache (a plain copy if that cannot be made).
        if (Run("ln", [nuget, lib]).ExitCode != 0)
            File.Copy(nuget, lib);

        var first = RunScript(temp.Path);
        Assert.True(first.ExitCode == 0, first.ToString());
        var patched = SystemLibstdcxxHasGlibcxx32(out _) ? "mis-torchsharp: not-needed:" : "mis-torchsharp: patched:";
        Assert.StartsWith(patched, first.Stdout);
        var libAfterFirst = File.ReadAllBytes(lib);
        var writeTimeAfterFirst = File.GetLastWriteTimeUtc(lib);
        var shim = Path.Combine(temp.Path, ShimName);
        var shimAfterFirst = File.Exists(shim) ? File.ReadAllBytes(shim) : null;

        var second = RunScript(temp.Path);
        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Matches("^mis-torchsharp: (up-to-date|not-needed):", second.Stdout);
        Assert.Equal(libAfterFirst, File.ReadAllBytes(lib));
        Assert.Equal(writeTimeAfterFirst, File.GetLastWriteTimeUtc(lib));
        Assert.Equal(shimAfterFirst, File.Exists(shim) ? File.ReadAllBytes(shim) : null);

        Assert.Equal(nugetBefore, File.ReadAllBytes(nuget));
        Assert.Equal(PristineSha256, Sha256(File.ReadAllBytes(nuget)));
    }

    [Fact]
    public void FixScript_DoesNothing_WhenLibstdcxxAlreadyHasGlibcxx32()
    {
        using var temp = new TempDir();
        var fakeLibstdcxx = Path.Combine(temp.Path, "libstdc++.so.6");
        File.WriteAllText(fakeLibstdcxx, $"fake libstdc++ defining GLIBCXX_3.4.30\0{Glibcxx32}\0");
        var dir = Directory.CreateDirectory(Path.Combine(temp.Path, "native")).FullName;
        var lib = Path.Combine(dir, LibName);
        File.Copy(NuGetOriginal(), lib);
        var before = File.ReadAllBytes(lib);

        var result = RunScript(dir, ("MIS_LIBSTDCXX", fakeLibstdcxx));

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.StartsWith("mis-torchsharp: not-needed:", result.Stdout);
        Assert.Contains(fakeLibstdcxx, result.Stdout);
        Assert.Equal(before, File.ReadAllBytes(lib));
        Assert.Equal(new[] { lib }, Directory.GetFiles(dir));
    }

    // --- helpers ------------------------------------------------------------------------------

    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "global.json")))
                return dir.FullName;
        }
        throw new InvalidOperationException($"no global.json above {AppContext.BaseDirectory}");
    }

    private static string NuGetOriginal()
    {
        var packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES");
        if (string.IsNullOrEmpty(packages))
            packages = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var path = Path.Combine(packages, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", LibName);
        Assert.True(File.Exists(path), $"{path} is missing");
        return path;
    }

    /// <summary>Same rule as the script: the ld.so cache's x86-64 libstdc++, else the usual path.</summary>
    private static bool SystemLibstdcxxHasGlibcxx32(out string path)
    {
        path = "/usr/lib/x86_64-linux-gnu/libstdc++.so.6";
        string cache;
        try
        {
            cache = Run("ldconfig", ["-p"]).Stdout;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            cache = ""; // no ldconfig on PATH: use the usual path
        }
        foreach (var line in cache.Split('\n'))
        {
            var t = line.Trim();
            var arrow = t.IndexOf(" => ", StringComparison.Ordinal);
            if (t.StartsWith("libstdc++.so.6 (", StringComparison.Ordinal) && t.Contains("x86-64") && arrow > 0
                && File.Exists(t[(arrow + 4)..]))
            {
                path = t[(arrow + 4)..];
                break;
            }
        }
        var bytes = File.ReadAllBytes(path);
        return bytes.AsSpan().IndexOf(Encoding.ASCII.GetBytes(Glibcxx32)) >= 0;
    }

    private static ProcessResult RunScript(string dir, params (string Name, string Value)[] env)
    {
        var script = Path.Combine(RepoRoot(), "build", "torchsharp", "fix-libtorchsharp.sh");
        return Run("bash", [script, dir], env);
    }

    private static ProcessResult Run(string file, string[] args, params (string Name, string Value)[] env)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        psi.Environment.Remove("MIS_LIBSTDCXX");
        foreach (var (name, value) in env)
            psi.Environment[name] = value;
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {file}");
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish");
        }
        return new ProcessResult(p.ExitCode, stdout, stderr.GetAwaiter().GetResult());
    }

    private static string Sha256(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    private sealed record ProcessResult(int ExitCode, string Stdout, string Stderr)
    {
        public override string ToString() => $"exit {ExitCode}\nstdout: {Stdout}\nstderr: {Stderr}";
    }

    private sealed class TempDir : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("mis-torchsharp-").FullName;

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }

    /// <summary>
    /// The few ELF64 little-endian facts the checks need, read independently of the build's C helper:
    /// version needs (.gnu.version_r), symbol version indexes (.gnu.version) and DT_NEEDED entries.
    /// </summary>
    private sealed class ElfInfo
    {
        private const uint ShtDynamic = 6, ShtStrtab = 3, ShtGnuVerneed = 0x6ffffffe, ShtGnuVersym = 0x6fffffff;
        private const long DtNull = 0, DtNeeded = 1;

        public List<(string Name, ushort Flags, ushort Index, bool IsWeak)> VersionNeeds { get; } = [];
        public List<string> Needed { get; } = [];
        private ushort[] _versym = [];

        public int SymbolsWithVersionIndex(ushort index) => _versym.Count(v => (v & 0x7fff) == index);

        public static ElfInfo Read(string path)
        {
            var f = File.ReadAllBytes(path);
            Assert.True(f.Length > 64 && f[0] == 0x7f && f[1] == 'E' && f[2] == 'L' && f[3] == 'F', $"{path} is not ELF");
            Assert.True(f[4] == 2 && f[5] == 1, $"{path} is not ELF64 little-endian");
            var shoff = checked((int)U64(f, 0x28));
            int shentsize = U16(f, 0x3a), shnum = U16(f, 0x3c);
            Assert.Equal(64, shentsize);

            var sections = Enumerable.Range(0, shnum).Select(i => shoff + i * shentsize).Select(h => (
                Type: U32(f, h + 4), Offset: checked((int)U64(f, h + 0x18)), Size: checked((int)U64(f, h + 0x20)),
                Link: (int)U32(f, h + 0x28), Info: U32(f, h + 0x2c))).ToList();
            string Str(int strtab, long offset)
            {
                Assert.Equal(ShtStrtab, sections[strtab].Type);
                var start = checked(sections[strtab].Offset + (int)offset);
                var end = Array.IndexOf(f, (byte)0, start);
                return Encoding.ASCII.GetString(f, start, end - start);
            }

            var info = new ElfInfo();
            foreach (var s in sections)
            {
                if (s.Type == ShtGnuVerneed)
                {
                    for (int vn = s.Offset, n = 0; n < s.Info; n++)
                    {
                        int count = U16(f, vn + 2), aux = vn + (int)U32(f, vn + 8);
                        for (var j = 0; j < count; j++)
                        {
                            ushort flags = U16(f, aux + 4), index = U16(f, aux + 6);
                            info.VersionNeeds.Add((Str(s.Link, U32(f, aux + 8)), flags, index, (flags & 0x2) != 0));
                            aux += (int)U32(f, aux + 12);
                        }
                        vn += (int)U32(f, vn + 12);
                    }
                }
                else if (s.Type == ShtGnuVersym)
                {
                    info._versym = Enumerable.Range(0, s.Size / 2).Select(i => U16(f, s.Offset + 2 * i)).ToArray();
                }
                else if (s.Type == ShtDynamic)
                {
                    for (var d = s.Offset; d + 16 <= s.Offset + s.Size; d += 16)
                    {
                        var tag = (long)U64(f, d);
                        if (tag == DtNull)
                            break;
                        if (tag == DtNeeded)
                            info.Needed.Add(Str(s.Link, (long)U64(f, d + 8)));
                    }
                }
            }
            return info;
        }

        private static ushort U16(byte[] f, int at) => BinaryPrimitives.ReadUInt16LittleEndian(f.AsSpan(at, 2));
        private static uint U32(byte[] f, int at) => BinaryPrimitives.ReadUInt32LittleEndian(f.AsSpan(at, 4));
        private static ulong U64(byte[] f, int at) => BinaryPrimitives.ReadUInt64LittleEndian(f.AsSpan(at, 8));
    }
}
