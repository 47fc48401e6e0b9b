using Mis.Enforcer.Confinement;
using Mis.Gym.Scenarios;

namespace Mis.Gym.Envs;

/// <summary>
/// The files a scenario names, in a private view for each of the kernel backend's episodes: the
/// episode's processes run in a mount namespace of their own (<see cref="MountNamespace"/>) in
/// which each directory that must change is an overlay of itself (the host's content below, a
/// tmpfs on top), and the missing files are made there. The host's files and mount table never
/// change; nothing outlives the episode, not even after a crash (the namespace dies with its last
/// process); any number of envs of one scenario can live at once.
/// <para>What is made: a read target is the scenario's own file with a line of content, whatever
/// the host has at that path (so an episode's world does not depend on the host's, which may
/// change under it); a listed directory and a written file's directory are private (made where
/// missing; writes never reach the host); a missing program gets a <c>#!/bin/sh exit 0</c> stub,
/// an existing one is used as it is. A command workload's <c>[workload.files]</c> are made with
/// their content, and its directories are private. The layers are planned again at each episode's
/// start, against the host as it is then.</para>
/// <para>Each overlay sits on a top-level directory (<c>/srv</c>, <c>/usr</c>, ...), which the host
/// does not remove while an episode runs; everything a scenario adds below it is the episode's,
/// and so are its writes anywhere below it. A scenario cannot add a top-level directory (that
/// would overlay <c>/</c>), name a file through a top-level symlink (<c>/bin</c> on merged-/usr
/// systems: use <c>/usr/bin</c>), or put files in <c>/proc</c>, <c>/sys</c> or <c>/dev</c>: that
/// is refused when the backend is made.</para>
/// </summary>
public sealed class KernelBackendFiles
{
    /// <summary>The upper layer's size limit per overlaid directory (a runaway writer fills this, not the host's memory).</summary>
    internal const long LayerBytes = 64L << 20;

    private const string Input = "mis gym: scenario input\n";
    private const string Stub = "#!/bin/sh\nexit 0\n";

    private readonly IReadOnlyList<Need> _needs;

    private KernelBackendFiles(IReadOnlyList<Need> needs) => _needs = needs;

    /// <summary>The directories an episode starting now would overlay (for messages and tests).</summary>
    internal IReadOnlyList<string> Directories => Layers(_needs).Select(l => l.Directory).ToList();

    /// <summary>One thing to be there: a file (with content; a program is executable) or a directory.</summary>
    /// <param name="Path">Absolute path.</param>
    /// <param name="Content">File content; null for a directory.</param>
    /// <param name="Program">Executable file.</param>
    /// <param name="Replace">Made even where the host has it (hiding the host's); otherwise only where missing.</param>
    /// <param name="Private">A directory the workload writes to: private even where the host has it.</param>
    public sealed record Need(string Path, string? Content, bool Program = false, bool Replace = false, bool Private = false);

    private sealed record Entry(string Relative, string? Content, bool Program);

    private sealed record Layer(string Directory, List<Entry> Entries);

    /// <summary>What <paramref name="scenario"/>'s actions need.</summary>
    internal static KernelBackendFiles Plan(ActionScenario scenario) => Plan(Needs(scenario));

    /// <summary>The view of a command scenario: its <c>[workload.files]</c> (see the other overload).</summary>
    /// <exception cref="BackendUnavailableException">A need cannot be met in a private view (named in the message).</exception>
    internal static KernelBackendFiles Plan(CommandScenario scenario) => Plan(Needs(scenario.Workload));

    /// <summary>
    /// The files for <paramref name="needs"/>, checked against the host as it is now. Each episode
    /// plans its layers again when it starts (the host may have gained or lost a directory since).
    /// </summary>
    /// <exception cref="BackendUnavailableException">A need cannot be met in a private view (named in the message).</exception>
    internal static KernelBackendFiles Plan(IEnumerable<Need> needs)
    {
        var list = needs.ToList();
        Layers(list);
        return new KernelBackendFiles(list);
    }

    private static List<Layer> Layers(IReadOnlyList<Need> needs)
    {
        var layers = new Dictionary<string, Layer>(StringComparer.Ordinal);
        foreach (var need in needs)
        {
            string path = Normalize(need.Path);
            bool directory = need.Content is null;
            // Only where missing: an existing program, or a directory nobody writes, is used as it is.
            if (!need.Replace && !(directory && need.Private) && (File.Exists(path) || Directory.Exists(path)))
                continue;
            string top = TopLevel(path, directory);
            if (!layers.TryGetValue(top, out var layer))
                layers[top] = layer = new Layer(top, []);
            if (path == top)
                continue; // the whole directory private: the overlay itself
            string relative = Path.GetRelativePath(top, path);
            if (!layer.Entries.Any(e => e.Relative == relative))
                layer.Entries.Add(new Entry(relative, need.Content, need.Program));
        }
        return [.. layers.Values];
    }

    /// <summary>
    /// A fresh private view: a new mount namespace with the layers in place. The caller launches
    /// the episode's processes in it and disposes it with the episode.
    /// </summary>
    /// <param name="owner">
    /// Who the episode runs as. Other than root, the files and directories made for the scenario
    /// are that account's, so the episode can write where the scenario writes as a root one can
    /// (what the policy allows is the same; only Unix permissions would differ).
    /// </param>
    internal MountNamespace CreateNamespace(WorkloadIdentity owner) => MountNamespace.Create(() =>
    {
        foreach (var layer in Layers(_needs))
        {
            MountNamespace.Overlay(layer.Directory, LayerBytes, (upper, lower) =>
            {
                foreach (var entry in layer.Entries)
                    Make(upper, lower, entry, owner);
            });
        }
    });

    private static IEnumerable<Need> Needs(ActionScenario scenario)
    {
        foreach (var action in scenario.Actions.Where(a => a.Path is not null))
        {
            string path = action.Path!;
            switch (action.Kind)
            {
                case ActionKind.Read:
                    yield return new Need(path, Input, Replace: true);
                    break;
                case ActionKind.List:
                    yield return new Need(path, null, Private: true);
                    break;
                case ActionKind.Write:
                    yield return new Need(Path.GetDirectoryName(path) ?? "/", null, Private: true);
                    break;
                case ActionKind.Exec:
                    yield return new Need(path, Stub, Program: true);
                    break;
            }
        }
    }

    private static IEnumerable<Need> Needs(WorkloadSpec workload)
    {
        foreach (var (path, content) in workload.Files)
        {
            yield return content is null
                ? new Need(path, null, Private: true)
                : new Need(path, content, Replace: true);
        }
    }

    private static void Make(string upper, string lower, Entry entry, WorkloadIdentity owner)
    {
        // Directories on the way: like the host's where it has them, so the merged view keeps
        // their mode and owner.
        var parts = entry.Relative.Split('/', StringSplitOptions.RemoveEmptyEntries);
        int directories = entry.Content is null ? parts.Length : parts.Length - 1;
        string relative = "";
        for (int i = 0; i < directories; i++)
        {
            relative = relative.Length == 0 ? parts[i] : relative + "/" + parts[i];
            string made = Path.Combine(upper, relative);
            if (!Directory.Exists(made))
                MountNamespace.MakeDirectoryLike(made, Path.Combine(lower, relative));
        }
        string target = Path.Combine(upper, entry.Relative);
        if (entry.Content is not null)
        {
            File.WriteAllText(target, entry.Content);
            var mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
            if (entry.Program)
                mode |= UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
            if (OperatingSystem.IsLinux())
                File.SetUnixFileMode(target, mode);
        }
        // The episode's own account owns what was made for it. A directory the host has stays as
        // it is unless that account may already list it: owning the private copy would show it
        // the names of what the host keeps there.
        if (owner.Uid != 0 && (entry.Content is not null || MayList(Path.Combine(lower, entry.Relative), owner)))
            MountNamespace.Chown(target, owner.Uid, owner.Gid);
    }

    /// <summary>True when <paramref name="directory"/> is missing on the host or <paramref name="owner"/> may read and search it there (its primary group only).</summary>
    private static bool MayList(string directory, WorkloadIdentity owner)
    {
        if (!OperatingSystem.IsLinux() || !Directory.Exists(directory))
            return true;
        var info = new DirectoryInfo(directory);
        var (uid, gid) = MountNamespace.Owner(directory);
        var mode = info.UnixFileMode;
        return uid == owner.Uid ? mode.HasFlag(UnixFileMode.UserRead | UnixFileMode.UserExecute)
            : gid == owner.Gid ? mode.HasFlag(UnixFileMode.GroupRead | UnixFileMode.GroupExecute)
            : mode.HasFlag(UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
    }

    // The overlay goes on the top-level directory (/srv, /usr, /etc, ...): a deeper one could be
    // made or removed on the host while an episode runs (a directory removed under an overlay
    // breaks it), a top-level one is not.
    private static string TopLevel(string path, bool directory)
    {
        string name = path.Split('/', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault() ?? "";
        string top = "/" + name;
        string why = name switch
        {
            "" => "/ itself cannot be overlaid",
            "proc" or "sys" or "dev" => $"{top} is the kernel's, not a place for scenario files",
            _ when path == top && !directory => "a file directly in / would need / overlaid",
            _ when new DirectoryInfo(top) is { Exists: true, LinkTarget: { } target } => $"{top} is a symlink (to {target}); name the file by its real path",
            _ when !Directory.Exists(top) => $"it would add the top-level directory {top}, and / cannot be overlaid",
            _ => "",
        };
        if (why.Length > 0)
            throw new BackendUnavailableException(
                $"the kernel backend cannot make {path} in the episode's private view: {why}; put the scenario's files below an existing directory such as /srv or /opt");
        return top;
    }

    private static string Normalize(string path)
    {
        string full = Path.GetFullPath(path);
        return full.Length > 1 ? full.TrimEnd('/') : full;
    }
}
