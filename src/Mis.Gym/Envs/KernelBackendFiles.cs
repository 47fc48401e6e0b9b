using Mis.Gym.Scenarios;

namespace Mis.Gym.Envs;

/// <summary>
/// The files a scenario's actions name, made to exist for the kernel backend: a read target gets a
/// line of content, a listed directory is created, a written file's parent directory is created, a
/// missing program gets a <c>#!/bin/sh</c> stub that exits 0. Only what was missing is created, and
/// it is removed (files, then the directories created for them, deepest first) when the last backend
/// using it is disposed; reference counts make concurrent backends in one process safe.
/// </summary>
internal sealed class KernelBackendFiles : IDisposable
{
    private static readonly Lock Gate = new();
    private static readonly Dictionary<string, int> Users = new(StringComparer.Ordinal);

    private readonly List<string> _created = [];
    private bool _disposed;

    private KernelBackendFiles()
    {
    }

    /// <summary>Creates what <paramref name="scenario"/>'s actions need.</summary>
    internal static KernelBackendFiles Prepare(Scenario scenario)
    {
        var files = new KernelBackendFiles();
        lock (Gate)
        {
            foreach (var action in scenario.Actions.Where(a => a.Path is not null))
            {
                string path = action.Path!;
                switch (action.Kind)
                {
                    case ActionKind.Read:
                        files.Ensure(path, directory: false, "mis gym: scenario input\n", executable: false);
                        break;
                    case ActionKind.List:
                        files.Ensure(path, directory: true, null, executable: false);
                        break;
                    case ActionKind.Write:
                        if (Path.GetDirectoryName(path) is { } parent)
                            files.Ensure(parent, directory: true, null, executable: false);
                        break;
                    case ActionKind.Exec:
                        files.Ensure(path, directory: false, "#!/bin/sh\nexit 0\n", executable: true);
                        break;
                }
            }
        }
        return files;
    }

    /// <summary>Removes what this instance created and no other instance still uses.</summary>
    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        lock (Gate)
        {
            // Deepest first: files before the directories made for them.
            foreach (string path in _created.OrderByDescending(p => p.Length))
            {
                if (--Users[path] > 0)
                    continue;
                Users.Remove(path);
                try
                {
                    if (Directory.Exists(path))
                        Directory.Delete(path, recursive: true);
                    else
                        File.Delete(path);
                }
                catch (IOException)
                {
                    // best effort: someone else put something there
                }
            }
        }
    }

    private void Ensure(string path, bool directory, string? content, bool executable)
    {
        if (Users.ContainsKey(path))
        {
            if (!_created.Contains(path))
            {
                Users[path]++;
                _created.Add(path);
            }
            return;
        }
        if (File.Exists(path) || Directory.Exists(path))
            return;
        if (Path.GetDirectoryName(path) is { } parent && parent != path)
            Ensure(parent, directory: true, null, executable: false);
        if (directory)
        {
            Directory.CreateDirectory(path);
        }
        else
        {
            File.WriteAllText(path, content);
            if (executable && !OperatingSystem.IsWindows())
                File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
                    UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        }
        Users[path] = 1;
        _created.Add(path);
    }
}
