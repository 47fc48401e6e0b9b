using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;
using Mis.Native;
using Mis.Server.Grpc;

namespace Mis.Server.Hosting;

/// <summary>
/// Keeps MIS-managed workloads off a MIS server's listeners. A workload that reached the server
/// steering its own enforcement could switch it off: ask the control plane for learning mode or a
/// DEFCON reset, or have <c>mis gym serve</c> reset or close the episode it runs in (and with it
/// the trajectory the researcher measures). Its processes cannot leave their cgroup, so the cgroup
/// of the process that connected tells them apart from the researcher who started it. Each
/// connection is judged once, as it is accepted, by the middlewares here; every call on a refused
/// one is then answered PERMISSION_DENIED with <see cref="Refusal(HttpContext)"/>.
/// </summary>
public static class WorkloadConnections
{
    /// <summary>
    /// The cgroup tree, relative to the cgroup v2 mount, that holds the workloads of every MIS
    /// process on the default cgroup root (<c>&lt;mount&gt;/mis</c>): <c>mis run</c>, the gym's
    /// kernel environments, the benchmarks.
    /// </summary>
    public const string DefaultTree = "/mis";

    /// <summary>
    /// A connection middleware for a TCP listener: a connection a process inside
    /// <paramref name="workloadTree"/> made from this host (or one nothing on this host can tell
    /// apart from that, see <see cref="TcpPeer"/>) is refused. The tree is read per connection
    /// (null: none yet).
    /// </summary>
    public static Func<ConnectionDelegate, ConnectionDelegate> JudgeTcp(Func<string?> workloadTree) => next => connection =>
    {
        if (connection.RemoteEndPoint is System.Net.IPEndPoint client && connection.LocalEndPoint is System.Net.IPEndPoint server
            && TcpPeer.Refusal(client, server, workloadTree()) is { } refusal)
            connection.Features.Set(new RefusedConnectionFeature(refusal));
        return next(connection);
    };

    /// <summary>
    /// A connection middleware for a Unix-socket listener: reads the peer's SO_PEERCRED once and
    /// keeps it on the connection (<see cref="PeerCredentialsFeature"/>); the process that
    /// connected is judged by its cgroup (<see cref="Refusal(PeerCredentials, string?, Func{bool}?)"/>),
    /// checked against the peer's pidfd where the kernel gives one (SO_PEERPIDFD, 6.5+). A
    /// connection whose credentials cannot be read is closed: no caller is judged without them.
    /// </summary>
    public static Func<ConnectionDelegate, ConnectionDelegate> JudgeUnixSocket(Func<string?> workloadTree) => next => async connection =>
    {
        System.Net.Sockets.Socket socket;
        PeerCredentials peer;
        try
        {
            socket = connection.Features.Get<IConnectionSocketFeature>()?.Socket
                     ?? throw new InvalidOperationException("the transport exposes no socket");
            peer = PeerCredentials.Of(socket);
        }
        catch (Exception e) when (e is System.Net.Sockets.SocketException or InvalidOperationException or ObjectDisposedException)
        {
            connection.Abort(new ConnectionAbortedException($"cannot read the caller's credentials (SO_PEERCRED): {e.Message}"));
            return;
        }
        connection.Features.Set(new PeerCredentialsFeature(peer, connection.ConnectionClosed));
        if (Refusal(socket, peer, workloadTree()) is { } refusal)
            connection.Features.Set(new RefusedConnectionFeature(refusal));
        await next(connection).ConfigureAwait(false);
    };

    // Refusal with the peer's pidfd, taken only when there is a tree to judge against.
    private static string? Refusal(System.Net.Sockets.Socket socket, PeerCredentials peer, string? workloadTree)
    {
        if (workloadTree is null)
            return null;
        Microsoft.Win32.SafeHandles.SafeFileHandle? pidFd;
        try
        {
            pidFd = PeerCredentials.PeerPidFd(socket);
        }
        catch (Exception e) when (e is System.Net.Sockets.SocketException or ObjectDisposedException)
        {
            return Refusal(peer, workloadTree, () => false); // the kernel has no process left to give a pidfd of
        }
        using (pidFd)
            return Refusal(peer, workloadTree, pidFd is null ? null : () => PeerCredentials.HoldsItsPid(pidFd));
    }

    /// <summary>Why every call on this request's connection is refused, or null.</summary>
    public static string? Refusal(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        return http.Features.Get<RefusedConnectionFeature>()?.Reason;
    }

    /// <summary>
    /// Why the process that connected to a Unix socket may not call, or null: it is inside
    /// <paramref name="workloadTree"/> (null: there is none). Fail closed: a connecting process
    /// already gone (it connected, left the socket to a child and exited, so that nothing is
    /// found to judge) is refused. <paramref name="peerHoldsItsPid"/> (the peer's pidfd, where the
    /// kernel gives one) closes the window in which the connecting process exits and its pid goes to
    /// a process outside the tree before the cgroup is read: the cgroup read by pid is the peer's only
    /// if the peer still holds that pid after the read.
    /// </summary>
    internal static string? Refusal(PeerCredentials peer, string? workloadTree, Func<bool>? peerHoldsItsPid = null)
    {
        if (workloadTree is null)
            return null;
        string? path;
        try
        {
            path = CgroupV2.PathOf(peer.Pid);
        }
        catch (IOException)
        {
            path = null; // it exited between the look and the read
        }
        if (path is not null && peerHoldsItsPid is not null && !peerHoldsItsPid())
            path = null; // gone since it connected: the pid may name another process by now
        if (path is null)
            return $"the process that connected (pid {peer.Pid}, uid {peer.Uid}) has exited and left its connection to another: cannot tell a workload from a user";
        return path == workloadTree || path.StartsWith(workloadTree + "/", StringComparison.Ordinal)
            ? $"process {peer.Pid} (uid {peer.Uid}) is a MIS-managed workload (cgroup {path}); a workload may not steer its own enforcement"
            : null;
    }
}

/// <summary>
/// Why every call on a connection is refused, decided as it was accepted: a MIS workload made it,
/// or nothing on this host can tell (<see cref="WorkloadConnections"/>).
/// </summary>
internal sealed record RefusedConnectionFeature(string Reason);
