using System.Text;

namespace Mis.Enforcer.Configuration;

/// <summary>The <c>[paths]</c> section of <c>config.toml</c>: where MIS keeps its files.</summary>
public sealed record PathsConfig
{
    /// <summary>
    /// <c>state_dir</c>: directory holding the enforcer's state and its lock file.
    /// Must not be empty. Default <c>"/var/lib/mis"</c>.
    /// </summary>
    public string StateDir { get; init; } = "/var/lib/mis";

    /// <summary>
    /// <c>cgroup_root</c>: cgroup v2 directory under which MIS creates one cgroup per space.
    /// Empty means automatic: <c>"&lt;cgroup v2 mount&gt;/mis"</c> (see <see cref="ResolveCgroupRoot"/>).
    /// Default <c>""</c>.
    /// </summary>
    public string CgroupRoot { get; init; } = "";

    /// <summary>
    /// <c>bpf_pin_dir</c>: bpffs directory where the BPF maps and programs are pinned.
    /// Must not be empty. Default <c>"/sys/fs/bpf/mis"</c>.
    /// </summary>
    public string BpfPinDir { get; init; } = "/sys/fs/bpf/mis";

    /// <summary>
    /// <c>runs_dir</c>: directory for experiment outputs; a relative path is relative to the working
    /// directory. Must not be empty. Default <c>"runs"</c>.
    /// </summary>
    public string RunsDir { get; init; } = "runs";

    /// <summary>
    /// <c>policy_files</c>: policy TOML files, loaded in this order. Default empty.
    /// </summary>
    public IReadOnlyList<string> PolicyFiles { get; init; } = [];

    /// <summary>
    /// The cgroup root to use: <see cref="CgroupRoot"/> when set, otherwise
    /// <c>"mis"</c> under <paramref name="cgroupV2Mount"/>.
    /// </summary>
    /// <param name="cgroupV2Mount">Where the cgroup v2 hierarchy is mounted, e.g. <c>/sys/fs/cgroup</c>.</param>
    /// <returns>The absolute or configured cgroup root directory.</returns>
    public string ResolveCgroupRoot(string cgroupV2Mount) =>
        CgroupRoot.Length > 0 ? CgroupRoot : Path.Combine(cgroupV2Mount, "mis");

    /// <summary>Value equality, comparing <see cref="PolicyFiles"/> element by element.</summary>
    /// <param name="other">The record to compare with.</param>
    /// <returns>Whether every setting is equal.</returns>
    public bool Equals(PathsConfig? other) =>
        ReferenceEquals(this, other) ||
        (other is not null
         && StateDir == other.StateDir
         && CgroupRoot == other.CgroupRoot
         && BpfPinDir == other.BpfPinDir
         && RunsDir == other.RunsDir
         && PolicyFiles.SequenceEqual(other.PolicyFiles));

    /// <summary>Hash code consistent with <see cref="Equals(PathsConfig)"/>.</summary>
    /// <returns>The hash code.</returns>
    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(StateDir);
        hash.Add(CgroupRoot);
        hash.Add(BpfPinDir);
        hash.Add(RunsDir);
        foreach (var file in PolicyFiles)
        {
            hash.Add(file);
        }
        return hash.ToHashCode();
    }

    private bool PrintMembers(StringBuilder builder)
    {
        builder.Append("StateDir = ").Append(StateDir)
            .Append(", CgroupRoot = ").Append(CgroupRoot)
            .Append(", BpfPinDir = ").Append(BpfPinDir)
            .Append(", RunsDir = ").Append(RunsDir)
            .Append(", PolicyFiles = [").AppendJoin(", ", PolicyFiles).Append(']');
        return true;
    }
}
