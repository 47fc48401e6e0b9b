using System.Globalization;
using System.Net;

namespace Mis.Gym.Server;

/// <summary>
/// Where <c>mis gym serve</c> listens: <c>HOST:PORT</c> (an IP address or <c>localhost</c>; IPv6 in
/// brackets, <c>[::1]:50052</c>; port 0 picks a free one) or <c>unix:PATH</c> (a socket made 0600).
/// </summary>
public sealed record GymListenAddress
{
    /// <summary>The default: loopback only, the port after the policy engine's 50051.</summary>
    public const string Default = "127.0.0.1:50052";

    private GymListenAddress(IPAddress? ip, int port, string? unixPath) => (Ip, Port, UnixPath) = (ip, port, unixPath);

    /// <summary>The TCP address, or null for a Unix socket.</summary>
    internal IPAddress? Ip { get; }

    /// <summary>The TCP port (0: any free port).</summary>
    internal int Port { get; }

    /// <summary>The Unix socket's absolute path, or null for TCP.</summary>
    internal string? UnixPath { get; }

    /// <summary>Parses <c>HOST:PORT</c> or <c>unix:PATH</c>.</summary>
    /// <exception cref="FormatException">Neither form; the message shows both.</exception>
    public static GymListenAddress Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        const string Expected = "expected HOST:PORT (e.g. 127.0.0.1:50052 or [::1]:50052) or unix:PATH";
        if (text.StartsWith("unix:", StringComparison.Ordinal))
        {
            string path = text["unix:".Length..];
            if (path.Length == 0)
                throw new FormatException($"\"{text}\": the socket path is empty; {Expected}");
            return new GymListenAddress(null, 0, Path.GetFullPath(path));
        }
        int colon = text.LastIndexOf(':');
        if (colon <= 0)
            throw new FormatException($"\"{text}\" has no port; {Expected}");
        string host = text[..colon], port = text[(colon + 1)..];
        if (!int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out int number) || number > 65535)
            throw new FormatException($"\"{text}\": port \"{port}\" is not a number from 0 to 65535; {Expected}");
        bool bracketed = host.StartsWith('[') && host.EndsWith(']');
        IPAddress? ip = host == "localhost" ? IPAddress.Loopback
            : IPAddress.TryParse(bracketed ? host[1..^1] : host, out var parsed) && (bracketed || parsed.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork) ? parsed
            : null;
        return ip is null
            ? throw new FormatException($"\"{text}\": \"{host}\" is not an IP address (IPv6 goes in brackets); {Expected}")
            : new GymListenAddress(ip, number, null);
    }

    /// <inheritdoc />
    public override string ToString() => UnixPath is not null ? "unix:" + UnixPath
        : Ip!.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{Ip}]:{Port}" : $"{Ip}:{Port}";
}
