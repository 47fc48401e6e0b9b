using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace Mis.Lsm.Tests;

/// <summary>
/// A throw-away Debian 12 VM whose kernel lets BPF LSM programs load, for the tests that need them.
/// The host kernel lists <c>bpf</c> among its LSMs but refuses every trampoline program (EPERM), so
/// the <c>lsm/</c> deny point can only be tested under another kernel: Debian 12's own
/// <c>linux-image-6.1.0-N-amd64</c> (BPF_LSM=y, <c>bpf</c> in its default <c>CONFIG_LSM</c>, BTF),
/// booted by qemu in software emulation (KVM hangs on these machines).
/// </summary>
/// <remarks>
/// <para>
/// Nothing is built or installed in the guest. A busybox-static initramfs loads the virtio and 9p
/// modules, mounts the host's root read-only over 9p, mounts the pseudo file systems a .NET process
/// and libbpf need over it, chroots into it and runs one shell script as root, so the guest runs the
/// host's own <c>dotnet</c> on the host's own build output. A second, writable 9p share (a fresh host
/// temp directory, <see cref="GuestResults"/> in the guest) carries the script in and the results
/// (exit code, stdout, stderr, any files the script writes) out. Then the guest powers off.
/// </para>
/// <para>
/// The guest's <c>/tmp</c> is a tmpfs (the shared root is read-only); host paths under
/// <c>/tmp</c> named in <c>keepVisible</c> (a checkout at <c>/tmp/mis-clean</c>) are moved onto
/// that tmpfs so they stay visible. The VM touches neither the host kernel's BPF state nor its
/// cgroups: it has its own kernel, and its root is read-only.
/// </para>
/// <para>
/// The kernel package is fetched once with <c>apt-get download</c> into <see cref="DefaultCacheDirectory"/>
/// (outside the repository; <c>MIS_VM_CACHE</c> overrides it); only the kernel image, its config
/// and the modules the initramfs needs are kept, and the initramfs is cached by kernel release and content hash.
/// </para>
/// </remarks>
internal sealed class LsmVm
{
    /// <summary>Where the kernel and initramfs are cached unless <c>MIS_VM_CACHE</c> says otherwise.</summary>
    internal const string DefaultCacheDirectory = "/var/cache/mis/vm";

    /// <summary>Where the writable results share is mounted inside the guest (also <c>$MIS_VM_RESULTS</c>).</summary>
    internal const string GuestResults = "/tmp/mis-vm";

    /// <summary>How long a run may take before qemu is killed, unless the caller says otherwise.</summary>
    internal static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(12);

    /// <summary>Console lines a failure shows: enough for a soft lockup's backtraces of both CPUs.</summary>
    private const int ConsoleTailLines = 150;

    // Debian's meta-package that depends on the current kernel image of the release.
    private const string KernelMetaPackage = "linux-image-amd64";

    // The modules between a bare kernel and a 9p root, in dependency order (insmod does not resolve
    // dependencies, and this host has no kmod to run depmod/modprobe with), with their place in the
    // kernel package's lib/modules/RELEASE/kernel tree.
    private static readonly (string Name, string Directory)[] Modules =
    [
        ("virtio_ring", "drivers/virtio"),
        ("virtio", "drivers/virtio"),
        ("virtio_pci_modern_dev", "drivers/virtio"),
        ("virtio_pci_legacy_dev", "drivers/virtio"),
        ("virtio_pci", "drivers/virtio"),
        ("9pnet", "net/9p"),
        ("9pnet_virtio", "net/9p"),
        ("netfs", "fs/netfs"),
        ("fscache", "fs/fscache"),
        ("9p", "fs/9p"),
    ];

    private const string Busybox = "/bin/busybox";

    // A minimal firmware that only loads the kernel, shipped with qemu (qemu-system-data); about
    // 1 s faster to the kernel than the default SeaBIOS under emulation.
    private const string QBoot = "/usr/share/qemu/qboot.rom";

    // Console lines /init prints at the two moments the host times.
    private const string RunningMarker = "mis-vm: running";
    private const string DoneMarker = "mis-vm: done";

    private readonly string _qemu;

    private LsmVm(string qemu, string kernelRelease, string kernel, string initramfs)
    {
        _qemu = qemu;
        KernelRelease = kernelRelease;
        Kernel = kernel;
        Initramfs = initramfs;
    }

    /// <summary>The guest kernel's release, e.g. <c>6.1.0-57-amd64</c>.</summary>
    internal string KernelRelease { get; }

    /// <summary>The cached kernel qemu boots: the uncompressed <c>vmlinux</c>, or <c>vmlinuz</c>.</summary>
    internal string Kernel { get; }

    /// <summary>The cached initramfs (cpio newc, uncompressed).</summary>
    internal string Initramfs { get; }

    /// <summary>
    /// Finds qemu and busybox-static, finds or fetches the kernel, and finds or builds the
    /// initramfs. Throws <see cref="LsmVmUnavailableException"/> saying what to install when a
    /// piece is missing.
    /// </summary>
    internal static LsmVm Prepare()
    {
        string qemu = FindOnPath("qemu-system-x86_64")
            ?? throw new LsmVmUnavailableException("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86; ./mis installs it)");
        if (!File.Exists(Busybox))
            throw new LsmVmUnavailableException($"{Busybox} is missing (apt-get install busybox-static; ./mis installs it)");
        if (ElfHasInterpreter(Busybox))
            throw new LsmVmUnavailableException(
                $"{Busybox} is dynamically linked and cannot run in an initramfs without a libc (apt-get install busybox-static; ./mis installs it)");

        string cache = Environment.GetEnvironmentVariable("MIS_VM_CACHE") is { Length: > 0 } c ? c : DefaultCacheDirectory;
        try
        {
            Directory.CreateDirectory(cache);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LsmVmUnavailableException($"cannot create the VM cache directory {cache}: {e.Message} (run as root, or set MIS_VM_CACHE)");
        }

        // Two test processes may prepare at once: one extracts, the other waits and reuses.
        using var cacheLock = LockFile(Path.Combine(cache, ".lock"));
        var (release, kernelDir) = FindOrFetchKernel(cache);
        string initramfs = FindOrBuildInitramfs(cache, release, kernelDir);
        return new LsmVm(qemu, release, BootableKernel(kernelDir), initramfs);
    }

    /// <summary>
    /// Boots the VM, runs <paramref name="script"/> (POSIX sh) as root in the host root chrooted
    /// inside it, and returns when the guest has powered off. The script starts in
    /// <paramref name="workingDirectory"/> with <c>MIS_LSM_VM=1</c>, <c>MIS_VM_RESULTS</c> (the
    /// writable share; files written there are in <see cref="LsmVmRun.ResultsDirectory"/>), a
    /// writable <c>HOME</c>, the host's <c>PATH</c> and the .NET variables set.
    /// </summary>
    /// <param name="script">The commands to run; its exit status is the run's exit code.</param>
    /// <param name="workingDirectory">A host directory, e.g. the repository root.</param>
    /// <param name="keepVisible">Host paths under <c>/tmp</c> the script needs (the guest's /tmp is a fresh tmpfs).</param>
    /// <param name="timeout">Kill qemu after this long (default <see cref="DefaultTimeout"/>).</param>
    /// <param name="cancellationToken">Kills qemu when cancelled.</param>
    internal async Task<LsmVmRun> RunAsync(string script, string workingDirectory, IEnumerable<string> keepVisible,
        TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        timeout ??= DefaultTimeout;
        var results = Directory.CreateTempSubdirectory("mis-lsm-vm-");
        try
        {
            // The script goes through the share, not the kernel command line: it may be long and
            // quoting it through the kernel's parameter parser is fragile.
            File.WriteAllText(Path.Combine(results.FullName, "run.sh"), RunScript(script, workingDirectory));
            File.WriteAllLines(Path.Combine(results.FullName, "keep"),
                keepVisible.Select(p => Path.TrimEndingDirectorySeparator(Path.GetFullPath(p))).Where(p => p.StartsWith("/tmp/", StringComparison.Ordinal)));

            var psi = new ProcessStartInfo(_qemu)
            {
                RedirectStandardInput = true, // -nographic reads the monitor from stdin: give it nothing
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            foreach (string arg in QemuArguments(results.FullName))
                psi.ArgumentList.Add(arg);

            var console = new ConsoleLog();
            var clock = Stopwatch.StartNew();
            using var qemu = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {_qemu}");
            qemu.StandardInput.Close();
            var readOut = console.PumpAsync(qemu.StandardOutput, clock);
            var readErr = console.PumpAsync(qemu.StandardError, clock);

            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(timeout.Value);
            try
            {
                await qemu.WaitForExitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                qemu.Kill(entireProcessTree: true);
                await qemu.WaitForExitAsync(CancellationToken.None);
                await Task.WhenAll(readOut, readErr);
                cancellationToken.ThrowIfCancellationRequested();
                // The command's own output goes to the share, not the console: show both.
                throw new TimeoutException(
                    $"the LSM VM did not finish within {timeout.Value.TotalSeconds:0} s (qemu killed; the command {(console.Running is null ? "never started" : "was running")}); " +
                    $"console tail:\n{console.Tail(ConsoleTailLines)}\ncommand stdout tail:\n{Tail(ReadIfPresent(results, "stdout"), 20)}\ncommand stderr tail:\n{Tail(ReadIfPresent(results, "stderr"), 20)}");
            }
            await Task.WhenAll(readOut, readErr);
            var total = clock.Elapsed;

            string exitFile = Path.Combine(results.FullName, "exit-code");
            if (!File.Exists(exitFile) || !int.TryParse(File.ReadAllText(exitFile).Trim(), out int exitCode))
                throw new InvalidOperationException(
                    $"the LSM VM powered off without reporting the command's exit code (qemu exited {qemu.ExitCode} after {total.TotalSeconds:0.0} s); console tail:\n{console.Tail(ConsoleTailLines)}");

            var boot = console.Running ?? total;
            var run = (console.Done ?? total) - boot;
            var outcome = new LsmVmRun(exitCode, ReadIfPresent(results, "stdout"), ReadIfPresent(results, "stderr"),
                console.Text, boot, run, total, results.FullName);
            results = null;
            return outcome;
        }
        finally
        {
            results?.Delete(recursive: true);
        }
    }

    private string[] QemuArguments(string resultsDirectory) =>
    [
        // One host thread runs both vCPUs in turn. With a thread per vCPU (thread=multi) a vCPU
        // could go on executing its stale translation of kernel code another vCPU had just
        // patched: attaching a BPF program patches a static branch or a trampoline with an int3
        // (text_poke_bp), and twice the guest hung with both CPUs trapping on an int3 that was no
        // longer in memory (a CI run: syscall_trace_enter+0xe9 while bpf(BPF_LINK_CREATE) ran).
        // The guest suite took 226 s this way against 216 s with a thread per vCPU.
        "-accel", "tcg,thread=single", "-cpu", "max", "-m", "4G", "-smp", "2",
        "-nographic", "-no-reboot", "-net", "none",
        .. (File.Exists(QBoot) ? new[] { "-bios", QBoot } : []),
        "-kernel", Kernel, "-initrd", Initramfs,
        // panic=-1: a guest that panics reboots at once, and -no-reboot turns that into qemu's exit.
        // A CPU stuck in the kernel (a soft lockup) panics too, with every CPU's backtrace on the
        // console (loglevel 5 shows them), instead of hanging the run until its timeout.
        "-append", "console=ttyS0 panic=-1 softlockup_panic=1 softlockup_all_cpu_backtrace=1 loglevel=5",
        // Without multidevs=remap the inode numbers of the host's several file systems collide in
        // the guest: /proc will not mount in the chroot and CoreCLR fails with 0x8007000E.
        "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
        "-virtfs", $"local,path={resultsDirectory},mount_tag=results,security_model=none",
    ];

    private static string RunScript(string script, string workingDirectory)
    {
        var env = new List<(string, string)>
        {
            ("MIS_LSM_VM", "1"),
            ("MIS_VM_RESULTS", GuestResults),
            ("HOME", "/tmp/mis-vm-home"),
            ("PATH", Environment.GetEnvironmentVariable("PATH") ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
            ("DOTNET_CLI_TELEMETRY_OPTOUT", "1"),
            ("DOTNET_NOLOGO", "1"),
            ("DOTNET_SKIP_FIRST_TIME_EXPERIENCE", "1"),
            ("TERM", "dumb"),
        };
        if (Environment.GetEnvironmentVariable("DOTNET_ROOT") is { Length: > 0 } dotnetRoot)
            env.Add(("DOTNET_ROOT", dotnetRoot));

        var sh = new StringBuilder();
        sh.Append("# Written by tests/Mis.Lsm.Tests (LsmVm); run as root in the LSM VM, chrooted into the host root.\n");
        foreach (var (name, value) in env)
            sh.Append($"export {name}={Quote(value)}\n");
        sh.Append("mkdir -p \"$HOME\"\n");
        sh.Append($"cd {Quote(workingDirectory)} || exit 125\n");
        sh.Append(script).Append('\n');
        return sh.ToString();
    }

    private static string Tail(string text, int lines) => string.Join('\n', text.Split('\n').TakeLast(lines));

    private static string Quote(string s) => "'" + s.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    private static string ReadIfPresent(DirectoryInfo dir, string name)
    {
        string path = Path.Combine(dir.FullName, name);
        return File.Exists(path) ? File.ReadAllText(path) : "";
    }

    // ---- kernel -------------------------------------------------------------------------------

    private static (string Release, string Directory) FindOrFetchKernel(string cache)
    {
        string? why = null;
        string? release = null;
        try
        {
            release = CurrentKernelRelease();
        }
        catch (LsmVmUnavailableException e)
        {
            why = e.Message;
        }

        if (release is not null)
        {
            string dir = KernelDirectory(cache, release);
            if (IsComplete(dir))
                return (release, dir);
            try
            {
                FetchKernel(cache, release, dir);
                return (release, dir);
            }
            catch (LsmVmUnavailableException e)
            {
                why = e.Message;
            }
        }

        // No apt (or no network): any kernel fetched earlier still does.
        var cached = Directory.EnumerateDirectories(cache, "kernel-*")
            .Where(IsComplete)
            .OrderByDescending(d => File.GetLastWriteTimeUtc(d))
            .FirstOrDefault();
        if (cached is not null)
            return (Path.GetFileName(cached)["kernel-".Length..], cached);
        throw new LsmVmUnavailableException($"no Debian 12 kernel for the LSM VM: {why} (nothing cached in {cache} either)");
    }

    private static string KernelDirectory(string cache, string release) => Path.Combine(cache, $"kernel-{release}");

    // "complete" is written last, once everything else is in place.
    private static bool IsComplete(string kernelDir) =>
        File.Exists(Path.Combine(kernelDir, "complete")) && File.Exists(Path.Combine(kernelDir, "config"));

    /// <summary>The release of Debian 12's current kernel image, from the meta-package's dependency.</summary>
    private static string CurrentKernelRelease()
    {
        var (code, output, error) = RunTool("apt-cache", "depends", KernelMetaPackage);
        if (code != 0)
            throw new LsmVmUnavailableException($"`apt-cache depends {KernelMetaPackage}` failed ({code}): {error.Trim()} (run apt-get update)");
        // Debian 12's image is linux-image-6.1.0-N-amd64; the module list above is 6.1's.
        var m = Regex.Match(output, @"Depends:\s*linux-image-(6\.1\.0-\d+-amd64)\s");
        if (!m.Success)
            throw new LsmVmUnavailableException(
                $"`apt-cache depends {KernelMetaPackage}` names no Debian 12 kernel (linux-image-6.1.0-N-amd64): {output.Trim()}");
        return m.Groups[1].Value;
    }

    private static void FetchKernel(string cache, string release, string kernelDir)
    {
        string package = $"linux-image-{release}";
        string work = Path.Combine(cache, $"fetch-{Environment.ProcessId}");
        if (Directory.Exists(work))
            Directory.Delete(work, recursive: true);
        Directory.CreateDirectory(work);
        try
        {
            var (code, _, error) = RunToolIn(work, "apt-get", "download", package);
            if (code != 0)
                throw new LsmVmUnavailableException($"`apt-get download {package}` failed ({code}): {error.Trim()}");
            string deb = Directory.EnumerateFiles(work, "*.deb").Single();
            string tree = Path.Combine(work, "tree");
            (code, _, error) = RunTool("dpkg-deb", "-x", deb, tree);
            if (code != 0)
                throw new LsmVmUnavailableException($"`dpkg-deb -x {deb}` failed ({code}): {error.Trim()}");

            // Keep what the VM boots with (a few MB), not the whole package (hundreds).
            string staged = Path.Combine(work, "kernel");
            Directory.CreateDirectory(Path.Combine(staged, "modules"));
            File.Copy(Path.Combine(tree, "boot", $"vmlinuz-{release}"), Path.Combine(staged, "vmlinuz"));
            File.Copy(Path.Combine(tree, "boot", $"config-{release}"), Path.Combine(staged, "config"));
            string moduleTree = Path.Combine(tree, "lib", "modules", release, "kernel");
            foreach (var (name, dir) in Modules)
                CopyModule(Path.Combine(moduleTree, dir, name), Path.Combine(staged, "modules", name + ".ko"));
            File.WriteAllText(Path.Combine(staged, "complete"), $"{package} {Path.GetFileName(deb)}\n");

            if (Directory.Exists(kernelDir))
                Directory.Delete(kernelDir, recursive: true);
            Directory.Move(staged, kernelDir);
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>
    /// The kernel file to boot: the uncompressed <c>vmlinux</c> when it can be made, else <c>vmlinuz</c>.
    /// qemu boots a bzImage by running its built-in decompressor, which under software emulation
    /// takes about 5 s of the boot; an ELF vmlinux with a PVH entry point (CONFIG_PVH=y, which
    /// Debian sets) is loaded straight into memory instead. Made once, beside vmlinuz.
    /// </summary>
    private static string BootableKernel(string kernelDir)
    {
        string vmlinuz = Path.Combine(kernelDir, "vmlinuz");
        string vmlinux = Path.Combine(kernelDir, "vmlinux");
        string unavailable = vmlinux + ".unavailable";
        if (File.Exists(vmlinux))
            return vmlinux;
        if (File.Exists(unavailable))
            return vmlinuz;
        string? why = TryDecompressKernel(kernelDir, vmlinuz, vmlinux);
        if (why is null)
            return vmlinux;
        File.WriteAllText(unavailable, $"booting vmlinuz instead: {why}\n");
        return vmlinuz;
    }

    // Debian 12 compresses its kernel with xz (CONFIG_KERNEL_XZ): the xz stream starts after the
    // bzImage's setup and decompressor code, and is followed by other data, hence --single-stream.
    private static ReadOnlySpan<byte> XzMagic => [0xFD, (byte)'7', (byte)'z', (byte)'X', (byte)'Z', 0x00];

    private static string? TryDecompressKernel(string kernelDir, string vmlinuz, string vmlinux)
    {
        string configPath = Path.Combine(kernelDir, "config");
        if (!File.Exists(configPath) || !File.ReadLines(configPath).Contains("CONFIG_PVH=y"))
            return "the kernel config does not say CONFIG_PVH=y";
        byte[] image = File.ReadAllBytes(vmlinuz);
        int start = image.AsSpan().IndexOf(XzMagic);
        if (start < 0)
            return "no xz stream in vmlinuz";

        string temp = vmlinux + $".{Environment.ProcessId}.tmp";
        var psi = new ProcessStartInfo("xz")
        {
            ArgumentList = { "-dc", "--single-stream" },
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        try
        {
            using var xz = Process.Start(psi)!;
            var error = xz.StandardError.ReadToEndAsync();
            Task copy;
            using (var output = File.Create(temp))
            {
                copy = xz.StandardOutput.BaseStream.CopyToAsync(output);
                try
                {
                    xz.StandardInput.BaseStream.Write(image, start, image.Length - start);
                }
                catch (IOException)
                {
                    // xz stops reading at the end of its stream; what follows is not the kernel.
                }
                xz.StandardInput.Close();
                copy.Wait();
            }
            xz.WaitForExit();
            if (xz.ExitCode != 0)
                return $"`xz -dc` failed: {error.Result.Trim()}";
            using (var f = File.OpenRead(temp))
            {
                Span<byte> magic = stackalloc byte[4];
                if (f.Read(magic) != 4 || !magic.SequenceEqual("\u007fELF"u8))
                    return "the decompressed kernel is not an ELF file";
            }
            File.Move(temp, vmlinux);
            return null;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return $"xz is not installed ({e.Message})";
        }
        finally
        {
            File.Delete(temp);
        }
    }

    // Debian 12 ships plain .ko files; later releases compress them, and busybox's insmod may not
    // read a compressed one, so a compressed module is decompressed here, on the host.
    private static void CopyModule(string pathWithoutExtension, string destination)
    {
        if (File.Exists(pathWithoutExtension + ".ko"))
        {
            File.Copy(pathWithoutExtension + ".ko", destination);
            return;
        }
        foreach (var (extension, tool) in new[] { (".ko.xz", "xz"), (".ko.zst", "zstd"), (".ko.gz", "gzip") })
        {
            string compressed = pathWithoutExtension + extension;
            if (!File.Exists(compressed))
                continue;
            var psi = new ProcessStartInfo(tool) { ArgumentList = { "-dc", compressed }, RedirectStandardOutput = true, RedirectStandardError = true };
            using var p = Process.Start(psi) ?? throw new LsmVmUnavailableException($"cannot start {tool} to decompress {compressed}");
            using (var output = File.Create(destination))
                p.StandardOutput.BaseStream.CopyTo(output);
            string error = p.StandardError.ReadToEnd();
            p.WaitForExit();
            if (p.ExitCode != 0)
                throw new LsmVmUnavailableException($"`{tool} -dc {compressed}` failed: {error.Trim()}");
            return;
        }
        throw new LsmVmUnavailableException($"the kernel package has no module {Path.GetFileName(pathWithoutExtension)} under {Path.GetDirectoryName(pathWithoutExtension)}");
    }

    // ---- initramfs ----------------------------------------------------------------------------

    private static string FindOrBuildInitramfs(string cache, string release, string kernelDir)
    {
        var files = new List<(string Path, int Mode, byte[] Content)>
        {
            ("init", 0x1ED /* 0755 */, Encoding.ASCII.GetBytes(InitScript)),
            ("bin/busybox", 0x1ED, File.ReadAllBytes(Busybox)),
        };
        foreach (var (name, _) in Modules)
            files.Add(($"lib/modules/{name}.ko", 0x1A4 /* 0644 */, File.ReadAllBytes(Path.Combine(kernelDir, "modules", name + ".ko"))));

        // Keyed by what goes in: a new busybox, kernel or /init makes a new file.
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (path, mode, content) in files)
        {
            hash.AppendData(Encoding.UTF8.GetBytes($"{path}\0{mode}\0{content.Length}\0"));
            hash.AppendData(content);
        }
        string key = Convert.ToHexStringLower(hash.GetHashAndReset())[..16];
        string target = Path.Combine(cache, $"initramfs-{release}-{key}.cpio");
        if (File.Exists(target))
            return target;

        string temp = target + $".{Environment.ProcessId}.tmp";
        using (var output = File.Create(temp))
        {
            var cpio = new CpioNewcWriter(output);
            foreach (string dir in new[] { "bin", "dev", "lib", "lib/modules" })
                cpio.Directory(dir);
            // The kernel opens /dev/console for /init's stdin/stdout before anything is mounted.
            cpio.CharacterDevice("dev/console", 5, 1);
            foreach (var (path, mode, content) in files)
                cpio.File(path, mode, content);
            cpio.Finish();
        }
        File.Move(temp, target, overwrite: true);

        // Older builds (another /init or busybox) are dropped once nobody can be about to boot them.
        foreach (string stale in Directory.EnumerateFiles(cache, "initramfs-*.cpio"))
            if (stale != target && File.GetLastWriteTimeUtc(stale) < DateTime.UtcNow.AddDays(-1))
                File.Delete(stale);
        return target;
    }

    // /init, run by the kernel as PID 1 from the initramfs. Any failure before the command runs is
    // printed with "mis-vm: error:" and powers off, so the host gets the reason in the console tail
    // instead of a hang until the timeout.
    private static readonly string InitScript = """
        #!/bin/busybox sh
        # /init of the MIS BPF LSM VM, written by tests/Mis.Lsm.Tests (LsmVm.cs).
        /bin/busybox mkdir -p /proc /sys /dev /sbin /usr/bin /usr/sbin /host /results /keep
        /bin/busybox --install -s
        mount -t proc proc /proc
        grep -q ' /dev ' /proc/mounts || mount -t devtmpfs dev /dev
        say() { echo "mis-vm: $* (guest uptime $(cut -d' ' -f1 /proc/uptime) s)"; }
        die() { echo "mis-vm: error: $*"; poweroff -f; sleep 60; }
        say "booted"

        for m in __MODULES__; do
          insmod /lib/modules/$m.ko || die "insmod $m failed"
        done

        # cache=loose: the shared root is read-only and does not change under the run; caching
        # its pages and attributes in the guest halves the time .NET takes to start.
        mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose,ro hostroot /host || die "cannot mount the host root (9p tag hostroot)"
        mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 results /results || die "cannot mount the results share (9p tag results)"

        # Host paths under /tmp the command needs (the repository may be a clone in /tmp): put
        # them aside before the tmpfs hides them, and back on top of it afterwards.
        i=0
        while IFS= read -r p; do
          [ -d "/host$p" ] || die "$p does not exist on the host"
          mkdir -p /keep/$i && mount --bind "/host$p" /keep/$i || die "cannot bind $p aside"
          i=$((i+1))
        done < /results/keep

        mount -t proc proc /host/proc || die "cannot mount /proc in the chroot"
        mount -t sysfs sys /host/sys || die "cannot mount /sys"
        mount -t devtmpfs dev /host/dev || die "cannot mount /dev"
        mkdir -p /host/dev/pts /host/dev/shm
        mount -t devpts devpts /host/dev/pts
        mount -t tmpfs shm /host/dev/shm
        mount -t securityfs securityfs /host/sys/kernel/security || die "cannot mount securityfs"
        mount -t bpf bpf /host/sys/fs/bpf || die "cannot mount bpffs"
        mount -t cgroup2 cgroup2 /host/sys/fs/cgroup || die "cannot mount cgroup2"
        mount -t tmpfs -o mode=1777 tmp /host/tmp || die "cannot mount a tmpfs on /tmp"
        [ -d /host/run ] && mount -t tmpfs -o mode=0755 run /host/run

        i=0
        while IFS= read -r p; do
          mkdir -p "/host$p" && mount --move /keep/$i "/host$p" || die "cannot put $p back"
          i=$((i+1))
        done < /results/keep
        mkdir -p /host__RESULTS__ && mount --move /results /host__RESULTS__ || die "cannot move the results share into the chroot"

        # The .NET test host and gRPC tests talk TCP over loopback.
        ip link set lo up || die "cannot bring lo up"

        say "running"
        chroot /host /bin/sh __RESULTS__/run.sh </dev/null >/host__RESULTS__/stdout 2>/host__RESULTS__/stderr
        echo $? >/host__RESULTS__/exit-code
        sync
        say "done"
        poweroff -f
        """
        .Replace("__MODULES__", string.Join(' ', Modules.Select(m => m.Name)), StringComparison.Ordinal)
        .Replace("__RESULTS__", GuestResults, StringComparison.Ordinal) + "\n";

    // ---- helpers ------------------------------------------------------------------------------

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, name))
            .FirstOrDefault(File.Exists);

    /// <summary>True when the ELF file asks for a program interpreter (PT_INTERP): it is dynamically linked.</summary>
    private static bool ElfHasInterpreter(string path)
    {
        using var f = File.OpenRead(path);
        using var r = new BinaryReader(f);
        if (r.ReadUInt32() != 0x464C457F || r.ReadByte() != 2 /* ELFCLASS64 */)
            throw new LsmVmUnavailableException($"{path} is not a 64-bit ELF executable");
        f.Position = 0x20;
        ulong phoff = r.ReadUInt64();
        f.Position = 0x36;
        ushort phentsize = r.ReadUInt16();
        ushort phnum = r.ReadUInt16();
        for (int i = 0; i < phnum; i++)
        {
            f.Position = (long)phoff + (long)i * phentsize;
            if (r.ReadUInt32() == 3 /* PT_INTERP */)
                return true;
        }
        return false;
    }

    private static FileStream LockFile(string path)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (deadline.Elapsed < TimeSpan.FromMinutes(5))
            {
                Thread.Sleep(200);
            }
        }
    }

    private static (int Code, string Output, string Error) RunTool(string tool, params string[] args) => RunToolIn(null, tool, args);

    private static (int Code, string Output, string Error) RunToolIn(string? workingDirectory, string tool, params string[] args)
    {
        var psi = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true };
        if (workingDirectory is not null)
            psi.WorkingDirectory = workingDirectory;
        foreach (string a in args)
            psi.ArgumentList.Add(a);
        try
        {
            using var p = Process.Start(psi)!;
            var error = p.StandardError.ReadToEndAsync();
            string output = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            return (p.ExitCode, output, error.Result);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new LsmVmUnavailableException($"{tool} is not available ({e.Message}); the LSM VM fetches its kernel with apt-get and dpkg-deb");
        }
    }

    /// <summary>The serial console as it arrives, with the times the two markers appeared.</summary>
    private sealed class ConsoleLog
    {
        private readonly StringBuilder _text = new();

        internal TimeSpan? Running { get; private set; }

        internal TimeSpan? Done { get; private set; }

        internal string Text
        {
            get
            {
                lock (_text)
                    return _text.ToString();
            }
        }

        internal async Task PumpAsync(StreamReader reader, Stopwatch clock)
        {
            for (string? line; (line = await reader.ReadLineAsync()) is not null;)
            {
                lock (_text)
                {
                    _text.Append(line).Append('\n');
                    if (Running is null && line.Contains(RunningMarker, StringComparison.Ordinal))
                        Running = clock.Elapsed;
                    if (Done is null && line.Contains(DoneMarker, StringComparison.Ordinal))
                        Done = clock.Elapsed;
                }
            }
        }

        internal string Tail(int lines) => LsmVm.Tail(Text, lines);
    }
}

/// <summary>What one VM run produced.</summary>
/// <param name="ExitCode">The script's exit status inside the guest.</param>
/// <param name="Stdout">The script's standard output.</param>
/// <param name="Stderr">The script's standard error.</param>
/// <param name="Console">The serial console: firmware, kernel and /init messages, for diagnosis.</param>
/// <param name="Boot">From starting qemu to the script starting in the guest.</param>
/// <param name="Run">The script's own run, until /init reported it done.</param>
/// <param name="Total">From starting qemu to qemu's exit.</param>
/// <param name="ResultsDirectory">The host side of the guest's <c>$MIS_VM_RESULTS</c>; deleted on dispose.</param>
internal sealed record LsmVmRun(int ExitCode, string Stdout, string Stderr, string Console,
    TimeSpan Boot, TimeSpan Run, TimeSpan Total, string ResultsDirectory) : IDisposable
{
    /// <summary>A file the script wrote to <c>$MIS_VM_RESULTS</c>, or null if it wrote none.</summary>
    internal string? ReadResult(string name)
    {
        string path = Path.Combine(ResultsDirectory, name);
        return File.Exists(path) ? File.ReadAllText(path) : null;
    }

    /// <summary>Removes the results directory.</summary>
    public void Dispose()
    {
        if (Directory.Exists(ResultsDirectory))
            Directory.Delete(ResultsDirectory, recursive: true);
    }
}

/// <summary>The VM cannot be prepared here: a tool or the kernel package is missing. The message says what to install.</summary>
internal sealed class LsmVmUnavailableException(string message) : Exception(message);
