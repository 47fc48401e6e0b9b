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
/// <para>Each overlay sits on the deepest existing directory above what it adds, so a scenario
/// cannot add a top-level directory (its overlay would be <c>/</c>): that is refused when the
/// backend is made.</para>
/// </summary>
internal sealed class KernelBackendFiles
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
    internal sealed record Need(string Path, string? Content, bool Program = false, bool Replace = false, bool Private = false);

    private sealed record Entry(string Relative, string? Content, bool Program);

    private sealed record Layer(string Directory, List<Entry> Entries);

    /// <summary>What <paramref name="scenario"/>'s actions (and command workload, if any) need.</summary>
    internal static KernelBackendFiles Plan(Scenario scenario) => Plan(Needs(scenario));

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
        var wanted = new List<(string Directory, Entry? Entry)>();
        foreach (var need in needs)
        {
            string path = Normalize(need.Path);
            bool exists = File.Exists(path) || Directory.Exists(path);
            bool directory = need.Content is null;
            if (exists && !need.Replace && !(directory && need.Private))
                continue;
            if (exists && directory && Directory.Exists(path))
            {
                wanted.Add((path, null)); // private as it is
                continue;
            }
            if (File.Exists(path) && directory)
                throw new BackendUnavailableException($"the kernel backend cannot make directory {path}: the host has a file there");
            string parent = Path.GetDirectoryName(path) ?? "/";
            string layer = DeepestExistingDirectory(parent, path);
            wanted.Add((layer, new Entry(Path.GetRelativePath(layer, path), need.Content, need.Program)));
        }
        // One overlay per outermost directory: one below another is part of it.
        var roots = wanted.Select(w => w.Directory).Distinct(StringComparer.Ordinal).OrderBy(d => d.Length).ToList();
        roots = roots.Where(d => !roots.Any(r => r != d && d.StartsWith(r + "/", StringComparison.Ordinal))).ToList();
        var layers = roots.Select(r => new Layer(r, [])).ToList();
        foreach (var (dir, entry) in wanted)
        {
            if (entry is null)
                continue;
            var layer = layers.First(l => dir == l.Directory || dir.StartsWith(l.Directory + "/", StringComparison.Ordinal));
            string relative = Path.GetRelativePath(layer.Directory, Path.Combine(dir, entry.Relative));
            if (!layer.Entries.Any(e => e.Relative == relative))
                layer.Entries.Add(entry with { Relative = relative });
        }
        return layers;
    }

    /// <summary>
    /// A fresh private view: a new mount namespace with the layers in place. The caller launches
    /// the episode's processes in it and disposes it with the episode.
    /// </summary>
    internal MountNamespace CreateNamespace() => MountNamespace.Create(() =>
    {
        foreach (var layer in Layers(_needs))
        {
            MountNamespace.Overlay(layer.Directory, LayerBytes, (upper, lower) =>
            {
                foreach (var entry in layer.Entries)
                    Make(upper, lower, entry);
            });
        }
    });

    private static IEnumerable<Need> Needs(Scenario scenario)
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
        if (scenario.Workload is { } workload)
        {
            foreach (var (path, content) in workload.Files)
            {
                yield return content is null
                    ? new Need(path, null, Private: true)
                    : new Need(path, content, Replace: true);
            }
        }
    }

    private static void Make(string upper, string lower, Entry entry)
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
        if (entry.Content is null)
            return;
        string file = Path.Combine(upper, entry.Relative);
        File.WriteAllText(file, entry.Content);
        var mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
        if (entry.Program)
            mode |= UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
        if (OperatingSystem.IsLinux())
            File.SetUnixFileMode(file, mode);
    }

    private static string DeepestExistingDirectory(string start, string forPath)
    {
        string dir = start;
        while (!Directory.Exists(dir))
        {
            if (File.Exists(dir))
                throw new BackendUnavailableException($"the kernel backend cannot make {forPath}: {dir} is a file on the host");
            dir = Path.GetDirectoryName(dir) ?? "/";
        }
        if (dir == "/")
            throw new BackendUnavailableException(
                $"the kernel backend cannot make {forPath}: it would add a top-level directory, and / cannot be overlaid; put the scenario's files below an existing directory (e.g. /srv or /opt)");
        return dir;
    }

    private static string Normalize(string path)
    {
        string full = Path.GetFullPath(path);
        return full.Length > 1 ? full.TrimEnd('/') : full;
    }
}
