using System.Net;
using Mis.Enforcer.Configuration;
using Tomlyn.Syntax;

namespace Mis.Enforcer.Policy;

/// <summary>
/// Reads a policy TOML file (format in README, example in <c>config/policy.example.toml</c>):
/// <code>
/// [policy]                       # optional
/// name = "data-task"             # default: the file name
/// default = "allow"              # verdict when no rule matches (allow | deny)
/// builtin = true                 # append the built-in rules after this file's own
/// exec = "rules"                 # rules | allowlist (only explicitly allowed programs, nothing written during the run)
///
/// [[file]]                       # path = "/exact" or a glob (*, **, ?, [..]); ops default to all
/// path = "/srv/secret/**"
/// ops = ["read", "write", "exec"]
/// action = "deny"                # allow | deny | trace
///
/// [[network]]
/// address = "127.0.0.1/32"       # IPv4/IPv6 address or CIDR, or "any"
/// port = 8080                    # 0 or absent = any port
/// protocol = "tcp"               # tcp | udp | any (default)
/// action = "deny"
///
/// [[unix]]                       # a Unix socket name: a path, or "@name" (abstract)
/// path = "/run/app.sock"         # exact name; unlisted names outside the workload's own are denied
/// action = "allow"
///
/// [[rule]]                       # the seed's AddRule shape
/// inode = 1234
/// dev_id = 2049
/// syscall_nr = 0                 # 0 = any
/// action = 1                     # 0 allow, 1 deny, 2 trace (or the words)
/// ttl_secs = 0                   # 0 = no expiry
/// </code>
/// Errors are <see cref="ConfigException"/>s naming file, line, column and key.
/// </summary>
public static class PolicyFile
{
    private static readonly string[] Actions = ["allow", "deny", "trace"];
    private static readonly Dictionary<string, string[]> Keys = new()
    {
        ["policy"] = ["name", "default", "builtin", "exec"],
        ["file"] = ["path", "ops", "action"],
        ["network"] = ["address", "port", "protocol", "action"],
        ["unix"] = ["path", "action"],
        ["rule"] = ["inode", "dev_id", "syscall_nr", "action", "ttl_secs"],
    };

    /// <summary>The tables a policy file has (a scenario's inline policy is these tables of the scenario file).</summary>
    internal static IReadOnlyCollection<string> Tables => Keys.Keys;

    /// <summary>Loads and compiles a policy file.</summary>
    public static WorkloadPolicy Load(string path, long maxTtlSecs = 86400, TimeProvider? clock = null) =>
        Bind(TomlDocument.Load(path, "policy file"), maxTtlSecs, clock);

    /// <summary>Parses policy text; <paramref name="file"/> names it in errors.</summary>
    public static WorkloadPolicy Parse(string text, string file, long maxTtlSecs = 86400, TimeProvider? clock = null) =>
        Bind(TomlDocument.Parse(text, file), maxTtlSecs, clock);

    private static WorkloadPolicy Bind(TomlDocument document, long maxTtlSecs, TimeProvider? clock)
    {
        document.RejectTopLevelKeys("put it under [policy], or in a [[file]], [[network]], [[unix]] or [[rule]] entry");
        return Bind(document, document.Tables, maxTtlSecs, clock);
    }

    /// <summary>
    /// Compiles the policy tables <paramref name="tables"/> of <paramref name="document"/>: a policy
    /// file's every table, or the inline rules of a file of another kind (a scenario), read in place.
    /// The policy's default name is the document's file name.
    /// </summary>
    public static WorkloadPolicy Bind(TomlDocument document, IEnumerable<TomlTable> tables, long maxTtlSecs = 86400, TimeProvider? clock = null)
    {
        clock ??= TimeProvider.System;
        string file = document.File;
        string name = Path.GetFileNameWithoutExtension(file);
        Verdict defaultAction = Verdict.Allow;
        bool builtin = true;
        bool execAllowList = false;
        var files = new List<FileRule>();
        var nets = new List<NetRule>();
        var unix = new List<UnixRule>();
        var inodes = new List<InodeRule>();

        foreach (var table in tables)
        {
            string kind = table.Name;
            if (!Keys.TryGetValue(kind, out var known))
                throw document.UnknownTable(table, Keys.Keys, "[policy], [[file]], [[network]], [[unix]] or [[rule]]");
            table.ExpectArray(kind != "policy");

            var values = table.Read(known);
            string source = table.Source;
            switch (kind)
            {
                case "policy":
                    if (values.TryGetValue("name", out var n)) name = n.NonEmptyString();
                    if (values.TryGetValue("default", out var d)) defaultAction = ToVerdict(d.OneOf(["allow", "deny"]));
                    if (values.TryGetValue("builtin", out var b)) builtin = b.Bool();
                    if (values.TryGetValue("exec", out var x)) execAllowList = x.OneOf(["rules", "allowlist"]) == "allowlist";
                    break;
                case "file":
                    files.Add(FileRuleFrom(values, source));
                    break;
                case "network":
                    nets.AddRange(NetRulesFrom(values, source));
                    break;
                case "unix":
                    unix.Add(UnixRuleFrom(values, source));
                    break;
                default:
                    inodes.Add(InodeRuleFrom(values, source, maxTtlSecs, clock));
                    break;
            }
        }
        if (builtin)
        {
            files.AddRange(BuiltinPolicy.Rules());
            unix.AddRange(BuiltinPolicy.UnixRules());
        }
        // Newest seed-shaped rule first, as AddRule would have stacked them.
        inodes.Reverse();
        return new WorkloadPolicy(name, defaultAction, files, nets, inodes, clock) { ExecAllowList = execAllowList, UnixRules = unix };
    }

    private static FileRule FileRuleFrom(TomlValues values, string source)
    {
        var path = values.Required("path");
        if (!PathGlob.TryParse(path.String(), out var glob, out var error))
            throw path.Error(error);
        var ops = FileOps.All;
        if (values.TryGetValue("ops", out var opsValue))
        {
            ops = 0;
            foreach (var op in opsValue.StringArray())
                ops |= op switch
                {
                    "read" => FileOps.Read,
                    "write" => FileOps.Write,
                    "exec" => FileOps.Exec,
                    _ => throw opsValue.Error($"unknown operation \"{op}\"; expected read, write or exec"),
                };
            if (ops == 0)
                throw opsValue.Error("lists no operation; omit ops to mean all of them");
        }
        var action = ToVerdict(values.Required("action").OneOf(Actions));
        return new FileRule(glob!, ops, action, $"{source}: {glob!.Pattern}");
    }

    // "any" is one rule per address family: the kernel matches IPv4 and IPv6 destinations
    // (IPv4-mapped IPv6 ones included) against rules of their own family only.
    private static IEnumerable<NetRule> NetRulesFrom(TomlValues values, string source)
    {
        var addressValue = values.Required("address");
        if (addressValue.String() != "any")
            return [NetRuleFrom(values, source, addressValue)];
        var v4 = NetRuleFrom(values, source, addressValue, (IPAddress.Any, 0));
        return [v4, v4 with { Address = IPAddress.IPv6Any }];
    }

    private static NetRule NetRuleFrom(TomlValues values, string source, ConfigValue addressValue, (IPAddress Address, int Prefix)? any = null)
    {
        string text = addressValue.String();
        IPAddress address;
        int prefix;
        if (any is { } both)
        {
            (address, prefix) = both;
        }
        else if (IPNetwork.TryParse(text, out var network))
        {
            (address, prefix) = (network.BaseAddress, network.PrefixLength);
        }
        else if (IPAddress.TryParse(text, out var single))
        {
            (address, prefix) = (single, single.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128);
        }
        else
        {
            throw addressValue.Error(
                $"\"{text}\" is not an IP address or CIDR network (e.g. \"127.0.0.1\", \"10.0.0.0/8\", \"::1\", \"any\")");
        }
        int port = values.TryGetValue("port", out var p) ? p.Int(0, 65535) : 0;
        var protocol = values.TryGetValue("protocol", out var proto)
            ? proto.OneOf(["tcp", "udp", "any"]) switch { "tcp" => NetProtocol.Tcp, "udp" => NetProtocol.Udp, _ => NetProtocol.Any }
            : NetProtocol.Any;
        var action = ToVerdict(values.Required("action").OneOf(Actions));
        return new NetRule(address, prefix, port, protocol, action, source);
    }

    private static UnixRule UnixRuleFrom(TomlValues values, string source)
    {
        var path = values.Required("path");
        string name = path.String();
        if (UnixRule.Invalid(name) is { } error)
            throw path.Error(error);
        var action = ToVerdict(values.Required("action").OneOf(Actions));
        return new UnixRule(name, action, $"{source}: {name}");
    }

    private static InodeRule InodeRuleFrom(TomlValues values, string source, long maxTtlSecs, TimeProvider clock)
    {
        ulong inode = (ulong)values.Required("inode").Long(1);
        ulong device = (ulong)values.Required("dev_id").Long(0);
        int syscall = values.TryGetValue("syscall_nr", out var s) ? s.Int(0, 1023) : 0;
        var actionValue = values.Required("action");
        Verdict action = actionValue.Node is IntegerValueSyntax ? (Verdict)actionValue.Int(0, 2) : ToVerdict(actionValue.OneOf(Actions));
        long ttl = values.TryGetValue("ttl_secs", out var t) ? t.Long(0, maxTtlSecs) : 0;
        return new InodeRule(device, inode, syscall, action, ttl == 0 ? null : clock.GetUtcNow().AddSeconds(ttl), $"{source}: inode {inode} dev {device}");
    }

    private static Verdict ToVerdict(string word) => word switch
    {
        "allow" => Verdict.Allow,
        "deny" => Verdict.Deny,
        _ => Verdict.Trace,
    };
}
