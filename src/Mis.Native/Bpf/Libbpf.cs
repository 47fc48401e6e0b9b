using System.Runtime.InteropServices;

namespace Mis.Native.Bpf;

/// <summary>
/// P/Invoke declarations for the parts of libbpf 1.x that MIS uses, from Debian's libbpf1
/// (<c>libbpf.so.1</c>). Since libbpf 1.0, pointer-returning calls return NULL and set errno,
/// and int-returning calls return a negative errno; both are read with SetLastError.
/// </summary>
public static unsafe partial class Libbpf
{
    public const string Library = "libbpf.so.1";

    [LibraryImport(Library, EntryPoint = "bpf_object__open_mem", SetLastError = true)]
    internal static partial nint ObjectOpenMem(void* buffer, nuint size, BpfObjectOpenOpts* opts);

    [LibraryImport(Library, EntryPoint = "bpf_object__load", SetLastError = true)]
    internal static partial int ObjectLoad(nint obj);

    [LibraryImport(Library, EntryPoint = "bpf_object__close")]
    internal static partial void ObjectClose(nint obj);

    [LibraryImport(Library, EntryPoint = "bpf_object__next_program")]
    internal static partial nint ObjectNextProgram(nint obj, nint previous);

    [LibraryImport(Library, EntryPoint = "bpf_object__find_program_by_name")]
    internal static partial nint ObjectFindProgramByName(nint obj, [MarshalAs(UnmanagedType.LPUTF8Str)] string name);

    [LibraryImport(Library, EntryPoint = "bpf_object__find_map_by_name")]
    internal static partial nint ObjectFindMapByName(nint obj, [MarshalAs(UnmanagedType.LPUTF8Str)] string name);

    [LibraryImport(Library, EntryPoint = "bpf_map__initial_value")]
    internal static partial void* MapInitialValue(nint map, nuint* size);

    [LibraryImport(Library, EntryPoint = "libbpf_probe_bpf_helper")]
    internal static partial int ProbeBpfHelper(int progType, int helperId, nint opts);

    [LibraryImport(Library, EntryPoint = "bpf_program__name")]
    internal static partial nint ProgramName(nint prog);

    [LibraryImport(Library, EntryPoint = "bpf_program__section_name")]
    internal static partial nint ProgramSectionName(nint prog);

    [LibraryImport(Library, EntryPoint = "bpf_program__set_autoload")]
    internal static partial int ProgramSetAutoload(nint prog, [MarshalAs(UnmanagedType.U1)] bool autoload);

    [LibraryImport(Library, EntryPoint = "bpf_program__set_type")]
    internal static partial int ProgramSetType(nint prog, int type);

    [LibraryImport(Library, EntryPoint = "bpf_program__set_expected_attach_type")]
    internal static partial int ProgramSetExpectedAttachType(nint prog, int type);

    [LibraryImport(Library, EntryPoint = "bpf_program__fd")]
    internal static partial int ProgramFd(nint prog);

    [LibraryImport(Library, EntryPoint = "bpf_program__attach", SetLastError = true)]
    internal static partial nint ProgramAttach(nint prog);

    [LibraryImport(Library, EntryPoint = "bpf_program__attach_cgroup", SetLastError = true)]
    internal static partial nint ProgramAttachCgroup(nint prog, int cgroupFd);

    [LibraryImport(Library, EntryPoint = "bpf_link__destroy")]
    internal static partial int LinkDestroy(nint link);

    [LibraryImport(Library, EntryPoint = "bpf_map__fd")]
    internal static partial int MapFd(nint map);

    [LibraryImport(Library, EntryPoint = "bpf_prog_test_run_opts", SetLastError = true)]
    internal static partial int ProgTestRunOpts(int progFd, BpfTestRunOpts* opts);

    [LibraryImport(Library, EntryPoint = "btf__load_vmlinux_btf", SetLastError = true)]
    public static partial nint BtfLoadVmlinux();

    [LibraryImport(Library, EntryPoint = "btf__type_cnt")]
    public static partial uint BtfTypeCount(nint btf);

    [LibraryImport(Library, EntryPoint = "btf__free")]
    public static partial void BtfFree(nint btf);

    [LibraryImport(Library, EntryPoint = "bpf_map__set_max_entries")]
    internal static partial int MapSetMaxEntries(nint map, uint maxEntries);

    [LibraryImport(Library, EntryPoint = "bpf_map__name")]
    internal static partial nint MapName(nint map);

    [LibraryImport(Library, EntryPoint = "bpf_map_update_elem", SetLastError = true)]
    internal static partial int MapUpdateElem(int fd, void* key, void* value, ulong flags);

    [LibraryImport(Library, EntryPoint = "bpf_map_lookup_elem", SetLastError = true)]
    internal static partial int MapLookupElem(int fd, void* key, void* value);

    [LibraryImport(Library, EntryPoint = "bpf_map_delete_elem", SetLastError = true)]
    internal static partial int MapDeleteElem(int fd, void* key);

    [LibraryImport(Library, EntryPoint = "bpf_map_get_next_key", SetLastError = true)]
    internal static partial int MapGetNextKey(int fd, void* key, void* nextKey);

    [LibraryImport(Library, EntryPoint = "libbpf_num_possible_cpus")]
    internal static partial int NumPossibleCpus();

    [LibraryImport(Library, EntryPoint = "ring_buffer__new", SetLastError = true)]
    internal static partial nint RingBufferNew(int mapFd, delegate* unmanaged<nint, nint, nuint, int> sampleCb, nint ctx, nint opts);

    [LibraryImport(Library, EntryPoint = "ring_buffer__poll", SetLastError = true)]
    internal static partial int RingBufferPoll(nint rb, int timeoutMs);

    [LibraryImport(Library, EntryPoint = "ring_buffer__consume", SetLastError = true)]
    internal static partial int RingBufferConsume(nint rb);

    [LibraryImport(Library, EntryPoint = "ring_buffer__free")]
    internal static partial void RingBufferFree(nint rb);

    [LibraryImport(Library, EntryPoint = "bpf_object__btf")]
    internal static partial nint ObjectBtf(nint obj);

    [LibraryImport(Library, EntryPoint = "btf__find_by_name_kind")]
    internal static partial int BtfFindByNameKind(nint btf, [MarshalAs(UnmanagedType.LPUTF8Str)] string name, uint kind);

    [LibraryImport(Library, EntryPoint = "btf__type_by_id")]
    internal static partial nint BtfTypeById(nint btf, uint id);

    [LibraryImport(Library, EntryPoint = "btf__name_by_offset")]
    internal static partial nint BtfNameByOffset(nint btf, uint offset);

    [LibraryImport(Library, EntryPoint = "btf__resolve_size")]
    internal static partial long BtfResolveSize(nint btf, uint typeId);

    /// <summary>BPF_ENABLE_STATS: an fd that keeps the statistics of <paramref name="type"/> on while open, or a negative errno.</summary>
    [LibraryImport(Library, EntryPoint = "bpf_enable_stats")]
    public static partial int EnableStats(int type);

    [LibraryImport(Library, EntryPoint = "bpf_obj_get_info_by_fd", SetLastError = true)]
    public static partial int ObjGetInfoByFd(int fd, void* info, uint* infoLength);

    [LibraryImport(Library, EntryPoint = "libbpf_major_version")]
    public static partial uint MajorVersion();

    [LibraryImport(Library, EntryPoint = "libbpf_minor_version")]
    public static partial uint MinorVersion();

    [LibraryImport(Library, EntryPoint = "libbpf_set_print")]
    internal static partial nint SetPrint(delegate* unmanaged<int, nint, nint, int> fn);
}

/// <summary>Mirror of libbpf 1.1's <c>struct bpf_object_open_opts</c> (prefix up to kernel_log_level).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct BpfObjectOpenOpts
{
    internal nuint Size;
    internal nint ObjectName;
    internal byte RelaxedMaps;
    internal nint PinRootPath;
    internal uint Reserved0;
    internal nint KconfigPath;
    internal nint BtfCustomPath;
    internal nint KernelLogBuffer;
    internal nuint KernelLogSize;
    internal uint KernelLogLevel;
}

/// <summary>Mirror of libbpf's <c>struct bpf_test_run_opts</c> (80 bytes on 64-bit).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct BpfTestRunOpts
{
    internal nuint Size;
    internal nint DataIn;
    internal nint DataOut;
    internal uint DataSizeIn;
    internal uint DataSizeOut;
    internal nint CtxIn;
    internal nint CtxOut;
    internal uint CtxSizeIn;
    internal uint CtxSizeOut;
    internal uint Retval;
    internal int Repeat;
    internal uint Duration;
    internal uint Flags;
    internal uint Cpu;
    internal uint BatchSize;
}
