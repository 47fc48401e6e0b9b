using System.Text;

namespace Mis.Lsm.Tests;

/// <summary>
/// Writes a cpio archive in the "newc" format, the only one the kernel unpacks as an initramfs
/// (Documentation/driver-api/early-userspace/buffer-format.rst). Every entry is owned by root
/// with mtime 0, so the same content always makes the same bytes (the cache is keyed by content).
/// </summary>
internal sealed class CpioNewcWriter(Stream output)
{
    private const int TypeDirectory = 0x4000;     // S_IFDIR
    private const int TypeRegular = 0x8000;       // S_IFREG
    private const int TypeCharacterDevice = 0x2000; // S_IFCHR

    private uint _inode = 1;

    /// <summary>A directory, mode 0755.</summary>
    internal void Directory(string path) => Entry(path, TypeDirectory | 0x1ED, [], 0, 0);

    /// <summary>A regular file with the given permission bits (e.g. 0755 as 0x1ED).</summary>
    internal void File(string path, int permissions, byte[] content) => Entry(path, TypeRegular | permissions, content, 0, 0);

    /// <summary>A character device node, mode 0600.</summary>
    internal void CharacterDevice(string path, int major, int minor) => Entry(path, TypeCharacterDevice | 0x180, [], major, minor);

    /// <summary>The trailer entry that ends the archive.</summary>
    internal void Finish() => Entry("TRAILER!!!", 0, [], 0, 0, inode: 0);

    private void Entry(string name, int mode, byte[] content, int rdevMajor, int rdevMinor, uint? inode = null)
    {
        byte[] nameBytes = Encoding.UTF8.GetBytes(name + "\0");
        // 110-byte header: magic, then 13 eight-digit hex fields.
        uint[] fields =
        [
            inode ?? _inode++, (uint)mode, 0 /* uid */, 0 /* gid */, mode == 0 ? 0u : (mode & TypeDirectory) != 0 ? 2u : 1u,
            0 /* mtime */, (uint)content.Length, 0 /* devmajor */, 0 /* devminor */, (uint)rdevMajor, (uint)rdevMinor,
            (uint)nameBytes.Length, 0 /* check */,
        ];
        var header = new StringBuilder("070701");
        foreach (uint f in fields)
            header.Append(f.ToString("X8", System.Globalization.CultureInfo.InvariantCulture));
        Write(Encoding.ASCII.GetBytes(header.ToString()));
        Write(nameBytes);
        Pad();
        Write(content);
        Pad();
    }

    private void Write(byte[] bytes) => output.Write(bytes);

    // Header+name and the file data are each padded to a multiple of 4 bytes.
    private void Pad()
    {
        int pad = (int)((4 - (output.Position % 4)) % 4);
        for (int i = 0; i < pad; i++)
            output.WriteByte(0);
    }
}
