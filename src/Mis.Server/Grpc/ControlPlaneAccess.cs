using Grpc.Core;
using Microsoft.AspNetCore.Http;
using Mis.Enforcer.Configuration;
using Mis.Enforcer.Confinement;
using Mis.Native;
using Mis.Server.Engine;
using Mis.Server.Hosting;

namespace Mis.Server.Grpc;

/// <summary>Who made a call, as the control plane authorizes it.</summary>
/// <param name="Uid">The caller's uid (SO_PEERCRED) on the Unix socket; null on TCP, which has no kernel credentials.</param>
/// <param name="Gid">Its gid (Unix socket only).</param>
/// <param name="Pid">Its process id at connect time (Unix socket only).</param>
/// <param name="UserName">Its account name, when the passwd database has one.</param>
/// <param name="IsAdmin">Root, a member of <c>[access] admin_group</c>, or a TCP caller that <c>[access] tcp_callers</c> makes an admin.</param>
internal sealed record Caller(uint? Uid, uint? Gid, int? Pid, string? UserName, bool IsAdmin)
{
    /// <summary>How refusals and audit lines name the caller: <c>uid 1001 (alice)</c>, or <c>a TCP caller</c>.</summary>
    public string Describe() => Uid is { } uid ? UserName is { } name ? $"uid {uid} ({name})" : $"uid {uid}" : "a TCP caller";

    /// <summary>The role named in audit lines.</summary>
    internal string Role => IsAdmin ? "admin" : "user";
}

/// <summary>
/// The caller of a service the node daemon hosts besides PolicyService (<see cref="ControlPlaneAccess.Authorize"/>).
/// </summary>
/// <param name="Name">How refusals and logs name it: <c>uid 1001 (alice)</c>, or <c>a TCP caller</c>.</param>
/// <param name="Uid">Its uid (Unix socket); null on TCP.</param>
/// <param name="IsAdmin">Root, a member of <c>[access] admin_group</c>, or an admin TCP caller.</param>
/// <param name="Identity">Who work done for it runs as: its own uid and gid, root (without capabilities) for root and TCP admins.</param>
/// <param name="ConnectionClosed">Cancelled when the connection of this call closes (never on TCP).</param>
public sealed record HostedCaller(string Name, uint? Uid, bool IsAdmin, WorkloadIdentity Identity, CancellationToken ConnectionClosed);

/// <summary>The kernel credentials of a Unix-socket connection, read once when it was accepted (<see cref="WorkloadConnections.JudgeUnixSocket"/>).</summary>
internal sealed class PeerCredentialsFeature(PeerCredentials credentials, CancellationToken closed)
{
    internal PeerCredentials Credentials { get; } = credentials;

    /// <summary>Cancelled when the connection closes.</summary>
    internal CancellationToken Closed { get; } = closed;

    /// <summary>
    /// The caller these credentials make, worked out at the connection's first call and kept: the
    /// credentials cannot change, and the passwd look-up is not free.
    /// </summary>
    internal Caller? Caller { get; set; }
}

/// <summary>
/// Who may do what over the control plane (<c>[access]</c>). On the Unix socket the caller is
/// known by SO_PEERCRED, read when the connection is accepted: uid 0 and members of
/// <c>admin_group</c> may do everything; any other uid U runs workloads only as itself (never
/// <c>as_root</c> or another <c>user</c>), only under the node's policy or one of
/// <c>user_policy_files</c>, and sees, kills, watches and changes only the workloads it started.
/// Policy reloads and runtime rules are the admins'. Every refusal is PERMISSION_DENIED naming
/// the reason (the audit line names the uid).
/// </summary>
public sealed class ControlPlaneAccess
{
    internal const string AdminGroupKey = "access.admin_group";
    internal const string UserPolicyFilesKey = "access.user_policy_files";
    internal const string SocketGroupKey = "grpc.unix_socket_group";

    private static readonly object CallerKey = new();

    private readonly uint? _adminGid;
    private readonly string _adminGroup;
    private readonly HashSet<string> _userPolicyFiles;
    private readonly string _tcpRefusal;

    private ControlPlaneAccess(uint? adminGid, string adminGroup, IReadOnlyList<string> userPolicyFiles, bool tcpIsAdmin, string tcpRefusal)
    {
        _adminGid = adminGid;
        _adminGroup = adminGroup;
        UserPolicyFiles = userPolicyFiles;
        _userPolicyFiles = userPolicyFiles.ToHashSet(StringComparer.Ordinal);
        TcpIsAdmin = tcpIsAdmin;
        _tcpRefusal = tcpRefusal;
    }

    /// <summary>True when callers on the TCP listener are admins; false: every TCP call is refused.</summary>
    internal bool TcpIsAdmin { get; }

    /// <summary><c>[access] user_policy_files</c>, resolved to absolute paths.</summary>
    internal IReadOnlyList<string> UserPolicyFiles { get; }

    /// <summary>
    /// Resolves <c>[access]</c> against the host: the admin group must exist and every
    /// <c>user_policy_files</c> entry must be a policy file that parses, so a typo stops the start
    /// (exit 2 naming the key, or the policy file's line).
    /// </summary>
    /// <exception cref="ConfigException">A group or file the configuration names does not exist, or a policy file does not parse.</exception>
    internal static ControlPlaneAccess Create(MisConfig config, string? configPath, string? configDirectory)
    {
        var access = config.Access;
        uint? adminGid = access.AdminGroup.Length == 0 ? null : ResolveGroup(access.AdminGroup, AdminGroupKey, configPath);
        var files = PolicySet.Resolve(access.UserPolicyFiles, configDirectory).Select(Path.GetFullPath).ToList();
        foreach (string file in files)
        {
            if (!File.Exists(file))
                throw KeyError(configPath, UserPolicyFilesKey, $"\"{file}\" does not exist (relative paths are relative to the configuration file)");
            // Parsed now too, so a broken one stops the start (its own file:line:column) instead
            // of failing each user's RunWorkload later.
            _ = Mis.Enforcer.Policy.PolicyFile.Load(file, config.Policy.MaxRuleTtlSecs, TimeProvider.System);
        }

        // Why "auto" is what it is: the TCP listener carries no kernel credentials, and a loopback
        // port is reachable by every local user. While the Unix socket is root's alone (0600) the
        // enforcer serves one operator and TCP stays as it always was: an admin. Once the socket is
        // opened to users, an admin TCP port would let any of them sidestep SO_PEERCRED through
        // 127.0.0.1, so TCP callers are admins only when mutual TLS proves who they are.
        bool tcpIsAdmin = access.TcpCallers switch
        {
            "admin" => true,
            "refused" => false,
            _ => config.Grpc.UsesMutualTls || !config.Grpc.UnixSocketOpenToUsers,
        };
        string refusal = access.TcpCallers == "refused"
            ? "TCP callers are refused ([access] tcp_callers = \"refused\")"
            : "TCP callers are refused: the Unix socket is open to users and TCP has no mutual TLS ([access] tcp_callers = \"auto\")";
        if (config.Grpc.UsesUnixSocket)
            refusal += $"; connect to the Unix socket {config.Grpc.UnixSocketPath}, which knows who you are";
        return new ControlPlaneAccess(adminGid, access.AdminGroup, files, tcpIsAdmin, refusal);
    }

    /// <summary>The gid of <c>[grpc] unix_socket_group</c> (which must exist), or null when none is set.</summary>
    /// <exception cref="ConfigException">The group does not exist.</exception>
    internal static uint? SocketGroup(MisConfig config, string? configPath) =>
        config.Grpc.UnixSocketGroup.Length == 0 ? null : ResolveGroup(config.Grpc.UnixSocketGroup, SocketGroupKey, configPath);

    /// <summary>The caller of this call, resolved once per call.</summary>
    /// <exception cref="EngineException">PermissionDenied for a TCP caller when TCP callers are refused.</exception>
    internal Caller CallerOf(ServerCallContext context)
    {
        if (context.UserState.TryGetValue(CallerKey, out var known))
            return (Caller)known;
        var caller = CallerOf(context.GetHttpContext());
        context.UserState[CallerKey] = caller;
        return caller;
    }

    /// <summary>The caller this call was already resolved to, or null (audit lines of refused TCP calls).</summary>
    internal static Caller? KnownCaller(ServerCallContext context) =>
        context.UserState.TryGetValue(CallerKey, out var known) ? (Caller)known : null;

    /// <summary>
    /// The cgroup tree (relative to the cgroup v2 mount, e.g. <c>/mis</c>) whose processes are
    /// workloads: this enforcer's and those of any other MIS process under the same parent. Set
    /// once the engine's cgroups exist.
    /// </summary>
    internal string? WorkloadTree { get; set; }

    /// <summary>The caller of a request, from its connection.</summary>
    /// <exception cref="EngineException">PermissionDenied for a TCP caller when TCP callers are refused, and for a workload calling from inside a MIS-managed cgroup (over the Unix socket or TCP).</exception>
    internal Caller CallerOf(HttpContext http)
    {
        if (http.Features.Get<RefusedConnectionFeature>() is { } refused)
            throw Denied(refused.Reason);
        if (http.Features.Get<PeerCredentialsFeature>() is { } connection)
        {
            if (connection.Caller is { } known)
                return known;
            var peer = connection.Credentials;
            bool admin = peer.Uid == 0 || (_adminGid is { } gid && peer.IsInGroup(gid));
            return connection.Caller = new Caller(peer.Uid, peer.Gid, peer.Pid, UserName(peer.Uid), admin);
        }
        if (!TcpIsAdmin)
            throw Denied(_tcpRefusal);
        return new Caller(null, null, null, null, IsAdmin: true);
    }

    /// <summary>
    /// The caller of a call to another service the daemon hosts (kernel episodes), authorized as
    /// PolicyService's callers are: TCP callers only as <c>[access] tcp_callers</c> allows, never a
    /// process inside a MIS-managed cgroup.
    /// </summary>
    /// <exception cref="EngineException">PermissionDenied with the reason (the interceptor answers PERMISSION_DENIED).</exception>
    public HostedCaller Authorize(ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var caller = CallerOf(context);
        var closed = context.GetHttpContext().Features.Get<PeerCredentialsFeature>()?.Closed ?? CancellationToken.None;
        var identity = caller.Uid is null or 0 ? WorkloadIdentity.Root
            : caller.Gid is { } gid and not 0 ? WorkloadIdentity.Ids(caller.Uid.Value, gid, caller.UserName)
            : throw Denied($"{caller.Describe()} has gid 0: its work never runs with gid 0");
        return new HostedCaller(caller.Describe(), caller.Uid, caller.IsAdmin, identity, closed);
    }

    /// <summary>Refuses a non-admin: <paramref name="what"/> belongs to root and the admin group.</summary>
    /// <exception cref="EngineException">PermissionDenied.</exception>
    internal void RequireAdmin(Caller caller, string what)
    {
        if (!caller.IsAdmin)
            throw Denied($"{what} belong to root{(_adminGroup.Length > 0 ? $" and the group {_adminGroup}" : "")} ([access] admin_group); {caller.Describe()} is neither");
    }

    /// <summary>True when <paramref name="caller"/> may see and act on <paramref name="workload"/>.</summary>
    internal static bool MayAct(Caller caller, ManagedWorkload workload) => caller.IsAdmin || workload.Spec.OwnerUid == caller.Uid;

    /// <summary>Refuses a non-admin acting on a workload it did not start.</summary>
    /// <exception cref="EngineException">PermissionDenied.</exception>
    internal static void RequireOwner(Caller caller, ManagedWorkload workload)
    {
        if (!MayAct(caller, workload))
            throw Denied($"cgroup {workload.CgroupId} was not started by {caller.Describe()}; a caller outside root and [access] admin_group may act only on its own workloads");
    }

    /// <summary>
    /// What an unprivileged caller may ask of RunWorkload, checked before anything is loaded: no
    /// <c>as_root</c>, no other account, no policy file outside <c>user_policy_files</c>. Returns
    /// the identity the workload then runs as (the caller itself), or null for an admin (the
    /// request's <c>user</c> / <c>as_root</c> decide, as they always did). <paramref name="policyFile"/>
    /// is the file to load: the configured spelling of an allowed one (never the caller's, whose
    /// <c>..</c> through a symbolic link could lead elsewhere), or the request's own for an admin.
    /// </summary>
    /// <exception cref="EngineException">PermissionDenied with the reason.</exception>
    internal WorkloadIdentity? CheckRunWorkload(Caller caller, Policy.V1.RunWorkloadRequest request, out string policyFile)
    {
        policyFile = request.PolicyFile;
        if (caller.IsAdmin)
            return null;
        uint uid = caller.Uid!.Value;
        if (request.AsRoot)
            throw Denied($"{caller.Describe()} may run workloads only as itself, not as_root");
        if (request.User.Length > 0 && request.User != caller.UserName)
            throw Denied($"{caller.Describe()} may run workloads only as itself, not as user \"{request.User}\" (leave user empty)");
        if (request.PolicyFile.Length > 0)
        {
            string asked = Path.IsPathRooted(request.PolicyFile) ? Path.GetFullPath(request.PolicyFile) : request.PolicyFile;
            if (!_userPolicyFiles.TryGetValue(asked, out string? allowed))
                throw Denied($"policy_file \"{request.PolicyFile}\" is not one {caller.Describe()} may choose: " +
                             (UserPolicyFiles.Count == 0 ? "[access] user_policy_files is empty, so only the node's policy (leave policy_file empty)"
                                 : $"[access] user_policy_files allows {string.Join(", ", UserPolicyFiles)}, or the node's policy (leave policy_file empty)"));
            policyFile = allowed;
        }
        try
        {
            return WorkloadIdentity.Ids(uid, caller.Gid!.Value, caller.UserName);
        }
        catch (ArgumentException)
        {
            throw Denied($"{caller.Describe()} has gid {caller.Gid}: a workload never runs with gid 0 unless an admin asks for as_root");
        }
    }

    private static EngineException Denied(string reason) => new(EngineError.PermissionDenied, reason);

    private static string? UserName(uint uid)
    {
        try
        {
            return Accounts.UserName(uid);
        }
        catch (IOException)
        {
            return null; // the name is for messages; the uid is what counts
        }
    }

    private static uint ResolveGroup(string group, string key, string? configPath)
    {
        uint? gid;
        try
        {
            gid = Accounts.GroupId(group);
        }
        catch (IOException e)
        {
            throw KeyError(configPath, key, e.Message, e);
        }
        return gid ?? throw KeyError(configPath, key, $"no group \"{group}\" in the group database");
    }

    private static ConfigException KeyError(string? configPath, string key, string detail, Exception? inner = null) =>
        configPath is null
            ? new ConfigException("configuration", 0, 0, key, detail, inner)
            : ConfigBinder.ErrorAtKey(configPath, key, detail, inner);
}
