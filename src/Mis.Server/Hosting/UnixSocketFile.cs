using System.Net.Sockets;
using Mis.Native;

namespace Mis.Server.Hosting;

/// <summary>
/// The Unix-domain socket of the control plane: 0600 (root only) from the moment it exists, by
/// binding under a umask of 0177; only then is it given its group and opened to the mode
/// <c>[grpc] unix_socket_mode</c> asks for (0660 for a group, 0666 for every local user). What a
/// caller who connects may do is decided per call by its kernel credentials (ControlPlaneAccess).
/// </summary>
public static class UnixSocketFile
{
    internal const UnixFileMode Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>
    /// Clears the way for binding <paramref name="path"/>: removes a stale socket left by a dead
    /// enforcer; refuses a live one (another server answers there) and anything that is not a socket.
    /// </summary>
    /// <exception cref="EnforcerStartException">The path is taken.</exception>
    public static void Prepare(string path)
    {
        if (!IsSocket(path, out bool exists))
        {
            if (exists)
                throw new EnforcerStartException($"grpc.unix_socket_path: {path} exists and is not a socket; remove it or choose another path", true);
            if (Path.GetDirectoryName(path) is { Length: > 0 } dir)
                Directory.CreateDirectory(dir);
            return;
        }
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
        }
        catch (SocketException)
        {
            File.Delete(path); // nobody listens: left behind by an enforcer that died
            return;
        }
        throw new EnforcerStartException($"grpc.unix_socket_path: a server already listens on {path}", false);
    }

    /// <summary>Runs <paramref name="bind"/> under umask 0177, so the socket is never more open than 0600.</summary>
    public static async Task BindPrivatelyAsync(Func<Task> bind)
    {
        uint previous = PosixFiles.SetUmask(0x7F); // 0177
        try
        {
            await bind().ConfigureAwait(false);
        }
        finally
        {
            PosixFiles.SetUmask(previous);
        }
    }

    /// <summary>Sets the socket's mode to 0600 (again: the umask already did, unless something raced it).</summary>
    public static void Restrict(string path) => File.SetUnixFileMode(path, Mode);

    /// <summary>
    /// Gives the socket (bound 0600) its group, then its <paramref name="mode"/>: in that order, so
    /// it is never open to a group it does not yet belong to.
    /// </summary>
    public static void Open(string path, UnixFileMode mode, uint? group)
    {
        if (group is { } gid)
            Accounts.ChangeOwner(path, 0, gid);
        File.SetUnixFileMode(path, mode);
    }

    /// <summary>Removes the socket at shutdown (only if it is one).</summary>
    public static void Remove(string path)
    {
        if (IsSocket(path, out _))
            File.Delete(path);
    }

    private static bool IsSocket(string path, out bool exists)
    {
        var type = PosixFiles.TypeOf(path);
        exists = type is not null;
        return type == UnixFileType.Socket;
    }
}
