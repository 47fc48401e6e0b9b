using System.Runtime.InteropServices;

namespace Mis.Native.Bpf;

/// <summary>
/// A map inside a <see cref="BpfObject"/>; valid while the object is. Keys and values are raw
/// bytes laid out as the BPF side declares them (see <c>bpf/include/mis_shared.h</c>).
/// </summary>
public sealed unsafe class BpfMap
{
    /// <summary>Create or replace (BPF_ANY).</summary>
    public const ulong Any = 0;
    /// <summary>Create only (BPF_NOEXIST).</summary>
    public const ulong NoExist = 1;
    /// <summary>Replace only (BPF_EXIST).</summary>
    public const ulong Exist = 2;

    private readonly BpfObject _owner;
    private readonly nint _map;

    internal BpfMap(BpfObject owner, nint map, string name)
    {
        _owner = owner;
        _map = map;
        Name = name;
    }

    /// <summary>The map's C variable name.</summary>
    public string Name { get; }

    /// <summary>The map's kernel file descriptor (valid after load).</summary>
    public int Fd
    {
        get
        {
            _ = _owner.Handle;
            return Libbpf.MapFd(_map);
        }
    }

    /// <summary>Sets the map's capacity (for a ring buffer: its size in bytes). Only before load.</summary>
    public void SetMaxEntries(uint maxEntries)
    {
        _ = _owner.Handle;
        int rc = Libbpf.MapSetMaxEntries(_map, maxEntries);
        if (rc < 0)
            throw new BpfLoadException($"cannot resize map '{Name}' to {maxEntries}", -rc, "");
    }

    /// <summary>
    /// Writes <paramref name="value"/> at <paramref name="offset"/> of a global-data map's initial
    /// contents (a <c>.rodata.NAME</c> section's variables), before load: for read-only data, the
    /// verifier then knows the value and drops the code it rules out.
    /// </summary>
    public void SetInitialValue(int offset, ReadOnlySpan<byte> value)
    {
        _ = _owner.Handle;
        nuint size;
        byte* data = (byte*)Libbpf.MapInitialValue(_map, &size);
        if (data == null || offset < 0 || (nuint)(offset + value.Length) > size)
            throw new BpfLoadException($"map '{Name}' has no initial value of {offset + value.Length} bytes", 22, "");
        value.CopyTo(new Span<byte>(data + offset, value.Length));
    }

    /// <summary>Inserts or replaces an element.</summary>
    /// <exception cref="BpfLoadException">The kernel refused (full map, bad size, <paramref name="flags"/> not met).</exception>
    public void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags = Any)
    {
        fixed (byte* k = key)
        fixed (byte* v = value)
        {
            int rc = Libbpf.MapUpdateElem(Fd, k, v, flags);
            if (rc < 0)
                throw new BpfLoadException($"cannot update an element of map '{Name}'", -rc, "");
        }
    }

    /// <summary>Reads an element into <paramref name="value"/>; false when the key is absent.</summary>
    public bool TryLookup(ReadOnlySpan<byte> key, Span<byte> value)
    {
        fixed (byte* k = key)
        fixed (byte* v = value)
        {
            int rc = Libbpf.MapLookupElem(Fd, k, v);
            if (rc == -Errno.ENOENT)
                return false;
            if (rc < 0)
                throw new BpfLoadException($"cannot look up an element of map '{Name}'", -rc, "");
            return true;
        }
    }

    /// <summary>Deletes an element; false when it was absent.</summary>
    public bool Delete(ReadOnlySpan<byte> key)
    {
        fixed (byte* k = key)
        {
            int rc = Libbpf.MapDeleteElem(Fd, k);
            if (rc == -Errno.ENOENT)
                return false;
            if (rc < 0)
                throw new BpfLoadException($"cannot delete an element of map '{Name}'", -rc, "");
            return true;
        }
    }

    /// <summary>Every key currently in the map (hash and LPM maps), each <paramref name="keySize"/> bytes.</summary>
    public List<byte[]> Keys(int keySize)
    {
        var keys = new List<byte[]>();
        var current = new byte[keySize];
        var next = new byte[keySize];
        bool first = true;
        while (true)
        {
            int rc;
            fixed (byte* c = current)
            fixed (byte* n = next)
                rc = Libbpf.MapGetNextKey(Fd, first ? null : c, n);
            if (rc == -Errno.ENOENT)
                return keys;
            if (rc < 0)
                throw new BpfLoadException($"cannot iterate map '{Name}'", -rc, "");
            keys.Add((byte[])next.Clone());
            (current, next) = (next, current);
            first = false;
        }
    }

    /// <summary>The per-CPU values of a per-CPU array or hash element holding one u64, summed.</summary>
    public ulong SumPerCpuUInt64(ReadOnlySpan<byte> key)
    {
        // The kernel writes one 8-byte-aligned slot per possible CPU.
        int cpus = Math.Max(1, Libbpf.NumPossibleCpus());
        var values = new ulong[cpus];
        fixed (byte* k = key)
        fixed (ulong* v = values)
        {
            int rc = Libbpf.MapLookupElem(Fd, k, v);
            if (rc == -Errno.ENOENT)
                return 0;
            if (rc < 0)
                throw new BpfLoadException($"cannot look up an element of map '{Name}'", -rc, "");
        }
        ulong sum = 0;
        foreach (var value in values)
            sum += value;
        return sum;
    }

    /// <summary>Reinterprets a blittable struct as the bytes a map key or value takes.</summary>
    public static ReadOnlySpan<byte> Bytes<T>(ref T value) where T : unmanaged =>
        MemoryMarshal.AsBytes(new ReadOnlySpan<T>(ref value));
}
