using System.Runtime.InteropServices;

namespace Mis.Native.Bpf;

/// <summary>
/// One opened BPF ELF object (libbpf <c>struct bpf_object</c>). Owns the object: disposing it
/// unloads its programs and maps (links attached from it must be disposed first, or they keep
/// the programs alive in the kernel until they are). Disposal is safe to call twice.
/// </summary>
public sealed unsafe class BpfObject : IDisposable
{
    private nint _handle;

    private BpfObject(nint handle, string name)
    {
        _handle = handle;
        Name = name;
    }

    /// <summary>The object's name, used in error messages.</summary>
    public string Name { get; }

    /// <summary>Whether <see cref="Load"/> succeeded.</summary>
    public bool IsLoaded { get; private set; }

    /// <summary>Parses an ELF BPF object held in memory (no kernel interaction yet).</summary>
    /// <exception cref="BpfOpenException">The bytes are not a usable BPF object.</exception>
    public static BpfObject Open(ReadOnlySpan<byte> elf, string name)
    {
        LibbpfLog.EnsureInstalled();
        LibbpfLog.Clear();
        nint namePtr = Marshal.StringToCoTaskMemUTF8(name);
        try
        {
            var opts = new BpfObjectOpenOpts { Size = (nuint)sizeof(BpfObjectOpenOpts), ObjectName = namePtr };
            nint handle;
            // libbpf keeps its own copy of the buffer, so pinning for the call is enough.
            fixed (byte* data = elf)
                handle = Libbpf.ObjectOpenMem(data, (nuint)elf.Length, &opts);
            if (handle == 0)
                throw new BpfOpenException($"cannot open BPF object '{name}'", Marshal.GetLastPInvokeError(), LibbpfLog.Tail());
            return new BpfObject(handle, name);
        }
        finally
        {
            Marshal.FreeCoTaskMem(namePtr);
        }
    }

    /// <summary>The programs in the object, in ELF order.</summary>
    public IReadOnlyList<BpfProgram> Programs
    {
        get
        {
            var programs = new List<BpfProgram>();
            for (nint p = Libbpf.ObjectNextProgram(Handle, 0); p != 0; p = Libbpf.ObjectNextProgram(Handle, p))
                programs.Add(new BpfProgram(this, p));
            return programs;
        }
    }

    /// <summary>The program whose C function is named <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">No such program in the object.</exception>
    public BpfProgram Program(string name)
    {
        nint p = Libbpf.ObjectFindProgramByName(Handle, name);
        return p != 0 ? new BpfProgram(this, p)
            : throw new KeyNotFoundException($"BPF object '{Name}' has no program named '{name}'");
    }

    /// <summary>Whether the kernel lets programs of type <paramref name="progType"/> call helper <paramref name="helperId"/> (libbpf's probe: loads a tiny program).</summary>
    public static bool HelperAvailable(int progType, int helperId) => Libbpf.ProbeBpfHelper(progType, helperId, 0) == 1;

    /// <summary>The map named <paramref name="name"/> (its C variable name, or a global-data section's name).</summary>
    /// <exception cref="KeyNotFoundException">No such map in the object.</exception>
    public BpfMap Map(string name)
    {
        nint m = Libbpf.ObjectFindMapByName(Handle, name);
        return m != 0 ? new BpfMap(this, m, name)
            : throw new KeyNotFoundException($"BPF object '{Name}' has no map named '{name}'");
    }

    /// <summary>Loads only the named programs: every other program of the object is skipped.</summary>
    public void LoadOnly(params string[] programNames)
    {
        foreach (var program in Programs)
            program.Autoload = programNames.Contains(program.Name);
        Load();
    }

    /// <summary>Creates the maps and loads every program marked for autoload into the kernel.</summary>
    /// <exception cref="BpfLoadException">The kernel refused (verifier, permission, missing hook).</exception>
    public void Load()
    {
        LibbpfLog.Clear();
        int rc = Libbpf.ObjectLoad(Handle);
        if (rc < 0)
            throw new BpfLoadException($"cannot load BPF object '{Name}'", -rc, LibbpfLog.Tail());
        IsLoaded = true;
    }

    internal nint Handle => _handle != 0 ? _handle : throw new ObjectDisposedException(nameof(BpfObject), Name);

    /// <summary>Unloads the object's programs and maps.</summary>
    public void Dispose()
    {
        nint handle = Interlocked.Exchange(ref _handle, 0);
        if (handle != 0)
            Libbpf.ObjectClose(handle);
    }
}

/// <summary>A program inside a <see cref="BpfObject"/>; valid while the object is.</summary>
public sealed unsafe class BpfProgram
{
    private readonly BpfObject _owner;
    private readonly nint _program;

    internal BpfProgram(BpfObject owner, nint program)
    {
        _owner = owner;
        _program = program;
    }

    /// <summary>The C function name.</summary>
    public string Name => Marshal.PtrToStringUTF8(Libbpf.ProgramName(_program)) ?? "";

    /// <summary>The ELF section, which names the hook, e.g. <c>tp_btf/sys_enter</c>.</summary>
    public string Section => Marshal.PtrToStringUTF8(Libbpf.ProgramSectionName(_program)) ?? "";

    /// <summary>Whether <see cref="BpfObject.Load"/> loads this program. Set before loading.</summary>
    public bool Autoload
    {
        set => Libbpf.ProgramSetAutoload(_program, value);
    }

    /// <summary>
    /// Sets the program type and expected attach type (the kernel's BPF_PROG_TYPE_* and
    /// BPF_*_ATTACH numbers) before loading, for hooks newer than the libbpf in use, which cannot
    /// tell them from the section name (Debian 12's libbpf 1.1 predates <c>cgroup/connect_unix</c>).
    /// </summary>
    /// <exception cref="BpfException">libbpf refused (the object is already loaded).</exception>
    public void SetType(int programType, int expectedAttachType)
    {
        _ = _owner.Handle;
        if (Libbpf.ProgramSetType(_program, programType) != 0 || Libbpf.ProgramSetExpectedAttachType(_program, expectedAttachType) != 0)
            throw new BpfLoadException($"cannot set the type of '{Name}' (is the object loaded already?)", 16, "");
    }

    /// <summary>The program's kernel file descriptor, or a negative number before loading.</summary>
    public int Fd => Libbpf.ProgramFd(_program);

    /// <summary>The kernel's id of the loaded program (what <c>bpftool prog/link show</c> print), 0 before loading.</summary>
    public uint Id
    {
        get
        {
            int fd = Fd;
            if (fd < 0)
                return 0;
            // struct bpf_prog_info begins { __u32 type; __u32 id; ... }; the kernel fills only
            // as much as the caller's length allows.
            uint* info = stackalloc uint[2];
            uint length = 8;
            return Libbpf.ObjGetInfoByFd(fd, info, &length) == 0 ? info[1] : 0;
        }
    }

    /// <summary>Attaches to the hook named by the section (tracepoints, LSM, fentry, …).</summary>
    /// <exception cref="BpfAttachException">The kernel refused the attachment.</exception>
    public BpfLink Attach()
    {
        LibbpfLog.Clear();
        _ = _owner.Handle;
        nint link = Libbpf.ProgramAttach(_program);
        return link != 0 ? new BpfLink(link, Section)
            : throw new BpfAttachException($"cannot attach '{Name}' ({Section})", Marshal.GetLastPInvokeError(), LibbpfLog.Tail());
    }

    /// <summary>Attaches a cgroup program to the cgroup whose directory is open as <paramref name="cgroupFd"/>.</summary>
    /// <exception cref="BpfAttachException">The kernel refused the attachment.</exception>
    public BpfLink AttachCgroup(SafeHandle cgroupFd)
    {
        LibbpfLog.Clear();
        _ = _owner.Handle;
        nint link = Libbpf.ProgramAttachCgroup(_program, (int)cgroupFd.DangerousGetHandle());
        return link != 0 ? new BpfLink(link, Section)
            : throw new BpfAttachException($"cannot attach '{Name}' ({Section}) to a cgroup", Marshal.GetLastPInvokeError(), LibbpfLog.Tail());
    }

    /// <summary>
    /// Runs the program once in the kernel with BPF_PROG_TEST_RUN (for <c>syscall</c> programs and
    /// the types that support it) and returns the program's return value.
    /// </summary>
    /// <exception cref="BpfLoadException">The kernel refused the test run.</exception>
    public uint TestRun(ReadOnlySpan<byte> context = default)
    {
        fixed (byte* ctx = context)
            return TestRunCore(ctx, context.Length);
    }

    /// <summary>
    /// Runs a <c>syscall</c> program once with BPF_PROG_TEST_RUN and lets it write results into
    /// <paramref name="context"/>: for that program type the kernel copies the (possibly
    /// modified) context back into the caller's input buffer. Returns the program's return value.
    /// </summary>
    /// <exception cref="BpfLoadException">The kernel refused the test run.</exception>
    public uint TestRunInOut(Span<byte> context)
    {
        fixed (byte* ctx = context)
            return TestRunCore(ctx, context.Length);
    }

    private uint TestRunCore(byte* ctx, int length)
    {
        var opts = new BpfTestRunOpts
        {
            Size = (nuint)sizeof(BpfTestRunOpts),
            CtxIn = (nint)ctx,
            CtxSizeIn = (uint)length,
        };
        int rc = Libbpf.ProgTestRunOpts(Fd, &opts);
        if (rc < 0)
            throw new BpfLoadException($"BPF_PROG_TEST_RUN of '{Name}' failed", -rc, "");
        return opts.Retval;
    }
}

/// <summary>An attachment of a program to a hook. Disposing detaches it; safe to call twice.</summary>
public sealed class BpfLink : IDisposable
{
    private nint _link;

    internal BpfLink(nint link, string hook)
    {
        _link = link;
        Hook = hook;
    }

    /// <summary>The hook this link attaches to (the program's section).</summary>
    public string Hook { get; }

    /// <summary>Detaches the program.</summary>
    public void Dispose()
    {
        nint link = Interlocked.Exchange(ref _link, 0);
        if (link != 0)
            Libbpf.LinkDestroy(link);
    }
}
