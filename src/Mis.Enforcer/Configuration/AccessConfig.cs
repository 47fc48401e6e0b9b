using System.Text;

namespace Mis.Enforcer.Configuration;

/// <summary>
/// The <c>[access]</c> section of <c>config.toml</c>: who may do what over <c>mis enforcer</c>'s
/// gRPC control plane. On the Unix socket the caller is known by its kernel credentials
/// (SO_PEERCRED): root and members of <see cref="AdminGroup"/> may do everything; any other user
/// only runs workloads as itself, under the node's policy or one of <see cref="UserPolicyFiles"/>,
/// and sees and changes only the workloads it started.
/// </summary>
public sealed record AccessConfig
{
    /// <summary>The values of <see cref="TcpCallers"/>.</summary>
    internal static readonly string[] TcpCallerModes = ["auto", "admin", "refused"];

    /// <summary>
    /// <c>admin_group</c>: members of this group (primary or supplementary) calling over the Unix
    /// socket have root's rights on the control plane; empty means root alone. Default <c>""</c>.
    /// </summary>
    public string AdminGroup { get; init; } = "";

    /// <summary>
    /// <c>user_policy_files</c>: the policy files an unprivileged caller may name in RunWorkload's
    /// <c>policy_file</c> (relative paths are relative to the configuration file); a caller that
    /// names none gets the node's policy (<c>[paths] policy_files</c>). Default empty.
    /// </summary>
    public IReadOnlyList<string> UserPolicyFiles { get; init; } = [];

    /// <summary>
    /// <c>tcp_callers</c>: what a caller on the TCP listener, which has no kernel credentials, may do:
    /// <c>"admin"</c> everything; <c>"refused"</c> nothing (PERMISSION_DENIED); <c>"auto"</c> is
    /// <c>"admin"</c> under mutual TLS or while the Unix socket is root's alone
    /// (<c>unix_socket_mode = "0600"</c>), else <c>"refused"</c>. Default <c>"auto"</c>.
    /// </summary>
    public string TcpCallers { get; init; } = "auto";

    /// <summary>Value equality, comparing <see cref="UserPolicyFiles"/> element by element.</summary>
    /// <param name="other">The record to compare with.</param>
    /// <returns>Whether every setting is equal.</returns>
    public bool Equals(AccessConfig? other) =>
        ReferenceEquals(this, other) ||
        (other is not null
         && AdminGroup == other.AdminGroup
         && TcpCallers == other.TcpCallers
         && UserPolicyFiles.SequenceEqual(other.UserPolicyFiles));

    /// <summary>A hash code consistent with <see cref="Equals(AccessConfig?)"/>.</summary>
    /// <returns>The hash code.</returns>
    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(AdminGroup);
        hash.Add(TcpCallers);
        foreach (var file in UserPolicyFiles)
        {
            hash.Add(file);
        }
        return hash.ToHashCode();
    }

    private bool PrintMembers(StringBuilder builder)
    {
        builder.Append("AdminGroup = ").Append(AdminGroup)
            .Append(", TcpCallers = ").Append(TcpCallers)
            .Append(", UserPolicyFiles = [").AppendJoin(", ", UserPolicyFiles).Append(']');
        return true;
    }
}
