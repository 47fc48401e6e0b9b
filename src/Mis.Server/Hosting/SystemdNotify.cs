using System.Net.Sockets;
using System.Text;

namespace Mis.Server.Hosting;

/// <summary>
/// The sd_notify protocol, enough for <c>Type=notify</c>: one datagram of <c>KEY=VALUE</c> lines
/// to the Unix socket systemd names in <c>$NOTIFY_SOCKET</c> (a leading <c>@</c> means the
/// abstract namespace). Without that variable (not under systemd) nothing is sent.
/// </summary>
internal static class SystemdNotify
{
    internal const string Variable = "NOTIFY_SOCKET";

    /// <summary>Sends <paramref name="state"/> (e.g. <c>READY=1</c>); false when not under systemd or the send failed.</summary>
    internal static bool Send(string state)
    {
        string? path = Environment.GetEnvironmentVariable(Variable);
        if (string.IsNullOrEmpty(path) || (path[0] != '/' && path[0] != '@'))
            return false;
        if (path[0] == '@')
            path = "\0" + path[1..];
        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
            socket.SendTo(Encoding.UTF8.GetBytes(state), new UnixDomainSocketEndPoint(path));
            return true;
        }
        catch (SocketException)
        {
            return false; // systemd went away or the variable is stale: the enforcer serves all the same
        }
    }
}
