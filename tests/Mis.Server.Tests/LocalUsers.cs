using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Mis.Server.Tests;

/// <summary>
/// Unprivileged local accounts made for one test (useradd, no home directory, unique names) and
/// removed again, plus the independent Python client (Debian's python3-grpcio) run as one of them
/// with setpriv, so the enforcer sees that user's kernel credentials on its Unix socket.
/// </summary>
internal sealed class LocalUsers : IDisposable
{
    // Debian's python3-grpcio belongs to /usr/bin/python3, not to whatever python3 is first on PATH.
    internal const string Python = "/usr/bin/python3";

    private readonly List<string> _users = [];
    private readonly List<string> _groups = [];
    private readonly string _tag = Guid.NewGuid().ToString("N")[..6];

    /// <summary>A world-readable directory holding the client script and its generated stubs.</summary>
    internal string ClientDir { get; }

    internal LocalUsers()
    {
        Mis.Testing.HostRequirements.That(File.Exists(Python) && Run(Python, "-c", "import grpc, grpc_tools").Exit == 0,
            "Debian's python3-grpcio and python3-grpc-tools are not installed (./mis installs them)");
        Mis.Testing.HostRequirements.That(File.Exists("/usr/sbin/useradd") && File.Exists("/usr/bin/setpriv"),
            "useradd (passwd) and setpriv (util-linux) are needed to call as other users");
        ClientDir = Directory.CreateTempSubdirectory("mis-access-client-").FullName;
        File.SetUnixFileMode(ClientDir, (UnixFileMode)0x1ED); // 0755: every test user reads it
        File.Copy(Path.Combine(AppContext.BaseDirectory, "python", "access_client.py"), Path.Combine(ClientDir, "access_client.py"));
        var (exit, output) = Run(Python, "-m", "grpc_tools.protoc", "-I", Path.Combine(AppContext.BaseDirectory, "proto"),
            "--python_out", ClientDir, "--grpc_python_out", ClientDir, "mis/policy/v1/policy.proto");
        Assert.True(exit == 0, output);
        foreach (string path in Directory.EnumerateFileSystemEntries(ClientDir, "*", SearchOption.AllDirectories))
            File.SetUnixFileMode(path, Directory.Exists(path) ? (UnixFileMode)0x1ED : (UnixFileMode)0x1A4);
    }

    /// <summary>Creates a user with a group of its own; returns its name, uid and gid.</summary>
    internal (string Name, uint Uid, uint Gid) AddUser(string role)
    {
        string name = $"mis{role}{_tag}";
        var (exit, output) = Run("/usr/sbin/useradd", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", name);
        Assert.True(exit == 0, $"useradd {name}: {output}");
        _users.Add(name);
        return (name, uint.Parse(Run("/usr/bin/id", "-u", name).Output.Trim()), uint.Parse(Run("/usr/bin/id", "-g", name).Output.Trim()));
    }

    /// <summary>Creates a group; returns its name and gid.</summary>
    internal (string Name, uint Gid) AddGroup(string role)
    {
        string name = $"mis{role}{_tag}";
        var (exit, output) = Run("/usr/sbin/groupadd", name);
        Assert.True(exit == 0, $"groupadd {name}: {output}");
        _groups.Add(name);
        return (name, uint.Parse(Run("/usr/bin/getent", "group", name).Output.Split(':')[2]));
    }

    /// <summary>
    /// Runs the calls as <paramref name="uid"/>:<paramref name="gid"/> (supplementary groups
    /// <paramref name="groups"/> only) against <paramref name="socket"/>; one result per call.
    /// </summary>
    internal JsonArray CallAs(uint uid, uint gid, string socket, IReadOnlyList<object> calls, params uint[] groups)
    {
        string json = JsonSerializer.Serialize(calls);
        var (exit, stdout, stderr) = RunSplit("/usr/bin/setpriv", [$"--reuid={uid}", $"--regid={gid}",
            groups.Length == 0 ? "--clear-groups" : $"--groups={string.Join(',', groups)}",
            Python, Path.Combine(ClientDir, "access_client.py"), ClientDir, $"unix:{socket}", json]);
        Assert.True(exit == 0, $"the client as uid {uid} failed:\n{stdout}{stderr}");
        return JsonNode.Parse(stdout.Trim().Split('\n')[^1])!.AsArray();
    }

    public void Dispose()
    {
        foreach (string user in _users)
            Run("/usr/sbin/userdel", user);
        foreach (string group in _groups)
            Run("/usr/sbin/groupdel", group);
        Directory.Delete(ClientDir, recursive: true);
    }

    internal static (int Exit, string Output) Run(string file, params string[] args)
    {
        var (exit, stdout, stderr) = RunSplit(file, args);
        return (exit, stdout + stderr);
    }

    private static (int Exit, string Stdout, string Stderr) RunSplit(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in args)
            psi.ArgumentList.Add(a);
        psi.Environment["HOME"] = "/";
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(90)))
        {
            p.Kill();
            return (-1, stdout.Result, "timed out\n" + stderr.Result);
        }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }
}
