using System.Globalization;
using System.Net;
using Mis.Native;

namespace Mis.Server.Grpc;

/// <summary>
/// Who is on the other end of a TCP connection to the control plane when it comes from this host.
/// A TCP caller has no kernel credentials (SO_PEERCRED is for Unix sockets), so a workload whose
/// network policy lets it reach 127.0.0.1 could otherwise call the control plane over TCP as the
/// admin a TCP caller may be, and switch off its own enforcement (learning mode, a DEFCON reset).
/// The kernel still knows the connecting socket: its row in <c>/proc/net/tcp</c> (or <c>tcp6</c>)
/// gives its inode, and a process holding that inode inside the MIS workload tree is a workload.
/// A local connection whose socket no process holds any more (closed right after sending, to
/// leave nothing to find) cannot be told apart and is refused too: fail closed.
/// </summary>
internal static class TcpPeer
{
    /// <summary>
    /// Why a connection from <paramref name="client"/> to <paramref name="server"/> is refused,
    /// or null: a remote host, or a local process outside <paramref name="workloadTree"/> (the
    /// cgroup directory holding every MIS workload; null while there is none).
    /// </summary>
    internal static string? Refusal(IPEndPoint client, IPEndPoint server, string? workloadTree, string procNet = "/proc/net")
    {
        var inode = FindSocket(client, server, procNet);
        if (inode is null)
            return IsThisHost(client.Address, server.Address)
                ? $"the connection from {client} comes from this host, but no socket of it is open any more: cannot tell a workload from a user"
                : null;
        if (inode == 0)
            return $"the socket that connected from {client} was closed before its call was read: cannot tell a workload from a user";
        return workloadTree is null ? null : HolderIn(workloadTree, inode.Value) is { } holder
            ? $"process {holder.Pid} is a MIS-managed workload (cgroup {holder.Cgroup}) calling over TCP from {client}; a workload may not steer its own enforcement"
            : null;
    }

    // A loopback caller, one whose source address is the address it connected to, or any other of this host's addresses.
    private static bool IsThisHost(IPAddress client, IPAddress server)
    {
        var address = Normalise(client);
        return IPAddress.IsLoopback(address) || address.Equals(Normalise(server))
            || System.Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces()
                .Any(i => i.GetIPProperties().UnicastAddresses.Any(u => Normalise(u.Address).Equals(address)));
    }

    private static IPAddress Normalise(IPAddress a) => a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : a;

    /// <summary>The inode of the connecting socket's row (local address = the client, remote = the server; 0: no process holds it), or null: no row.</summary>
    internal static ulong? FindSocket(IPEndPoint client, IPEndPoint server, string procNet = "/proc/net")
    {
        foreach (string file in new[] { "tcp", "tcp6" })
        {
            string path = Path.Combine(procNet, file);
            if (!File.Exists(path))
                continue;
            foreach (string line in File.ReadLines(path).Skip(1))
            {
                // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
                var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (f.Length < 10 || Parse(f[1]) is not { } local || Parse(f[2]) is not { } remote)
                    continue;
                if (Same(local, client) && Same(remote, server))
                    return ulong.Parse(f[9], CultureInfo.InvariantCulture);
            }
        }
        return null;
    }

    private static bool Same(IPEndPoint a, IPEndPoint b) => a.Port == b.Port && Normalise(a.Address).Equals(Normalise(b.Address));

    // "0100007F:C350": the address as the kernel's 32-bit words in network order, each printed as a
    // host integer (so written back in host order they are the address's bytes again), then the port.
    private static IPEndPoint? Parse(string field)
    {
        int colon = field.IndexOf(':', StringComparison.Ordinal);
        if (colon is not (8 or 32) || !int.TryParse(field.AsSpan(colon + 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int port))
            return null;
        var bytes = new byte[colon / 2];
        for (int word = 0; word < bytes.Length / 4; word++)
        {
            if (!uint.TryParse(field.AsSpan(word * 8, 8), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out uint value))
                return null;
            BitConverter.TryWriteBytes(bytes.AsSpan(word * 4, 4), value);
        }
        return new IPEndPoint(new IPAddress(bytes), port);
    }

    /// <summary>A process under <paramref name="workloadTree"/> (relative to the cgroup v2 mount) holding the socket <paramref name="inode"/>.</summary>
    private static (int Pid, string Cgroup)? HolderIn(string workloadTree, ulong inode)
    {
        if (CgroupV2.FindMount() is not { } mount)
            return null;
        string root = Path.Join(mount, workloadTree);
        if (!Directory.Exists(root))
            return null;
        string target = $"socket:[{inode}]";
        foreach (string procs in Directory.EnumerateFiles(root, "cgroup.procs", new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true }))
        {
            string[] pids;
            try
            {
                pids = File.ReadAllLines(procs);
            }
            catch (IOException)
            {
                continue; // the cgroup went away meanwhile
            }
            foreach (string text in pids)
            {
                if (!int.TryParse(text, CultureInfo.InvariantCulture, out int pid))
                    continue;
                try
                {
                    foreach (string fd in Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd"))
                        if (new FileInfo(fd).LinkTarget == target)
                            return (pid, "/" + Path.GetRelativePath(mount, Path.GetDirectoryName(procs)!));
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // the process exited meanwhile: it holds nothing
                }
            }
        }
        return null;
    }
}
