using System.Net;
using Mis.Enforcer.Configuration;
using Tomlyn.Parsing;
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
internal static class PolicyFile
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

    /// <summary>Loads and compiles a policy file.</summary>
    internal static WorkloadPolicy Load(string path, long maxTtlSecs = 86400, TimeProvider? clock = null)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException(path, 0, 0, null, $"cannot read the policy file: {e.Message}", e);
        }
        return Parse(text, path, maxTtlSecs, clock);
    }

    /// <summary>Parses policy text; <paramref name="file"/> names it in errors.</summary>
    internal static WorkloadPolicy Parse(string text, string file, long maxTtlSecs = 86400, TimeProvider? clock = null)
    {
        clock ??= TimeProvider.System;
        var document = SyntaxParser.Parse(text, file, validate: true);
        foreach (var d in document.Diagnostics)
            if (d.Kind == DiagnosticMessageKind.Error)
                throw new ConfigException(file, d.Span.Start.Line + 1, d.Span.Start.Column + 1, null, $"syntax error: {d.Message}");
        if (document.KeyValues.FirstOrDefault() is { } stray)
            throw ConfigBinder.Error(file, stray, null,
                "a setting outside any table; put it under [policy], or in a [[file]], [[network]], [[unix]] or [[rule]] entry");

        string name = Path.GetFileNameWithoutExtension(file);
        Verdict defaultAction = Verdict.Allow;
        bool builtin = true;
        bool execAllowList = false;
        var files = new List<FileRule>();
        var nets = new List<NetRule>();
        var unix = new List<UnixRule>();
        var inodes = new List<InodeRule>();

        foreach (var table in document.Tables)
        {
            string kind = table.Name?.ToString().Trim() ?? "";
            if (!Keys.TryGetValue(kind, out var known))
                throw ConfigBinder.Error(file, table, kind,
                    $"unknown table; expected [policy], [[file]], [[network]], [[unix]] or [[rule]]{Suggest(kind, Keys.Keys)}");
            bool isArray = table is TableArraySyntax;
            if (isArray == (kind == "policy"))
                throw ConfigBinder.Error(file, table, kind, kind == "policy" ? "write [policy], not [[policy]]" : $"write [[{kind}]] (an array of tables), not [{kind}]");

            var values = Read(file, kind, table, known);
            string source = $"{Path.GetFileName(file)}:{table.Span.Start.Line + 1}";
            switch (kind)
            {
                case "policy":
                    if (values.TryGetValue("name", out var n)) name = n.NonEmptyString();
                    if (values.TryGetValue("default", out var d)) defaultAction = ToVerdict(d.OneOf(["allow", "deny"]));
                    if (values.TryGetValue("builtin", out var b)) builtin = b.Bool();
                    if (values.TryGetValue("exec", out var x)) execAllowList = x.OneOf(["rules", "allowlist"]) == "allowlist";
                    break;
                case "file":
                    files.Add(FileRuleFrom(file, table, values, source));
                    break;
                case "network":
                    nets.AddRange(NetRulesFrom(file, table, values, source));
                    break;
                case "unix":
                    unix.Add(UnixRuleFrom(file, table, values, source));
                    break;
                default:
                    inodes.Add(InodeRuleFrom(file, table, values, source, maxTtlSecs, clock));
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

    private static Dictionary<string, ConfigValue> Read(string file, string kind, TableSyntaxBase table, string[] known)
    {
        var values = new Dictionary<string, ConfigValue>();
        foreach (var kv in table.Items)
        {
            string key = kv.Key?.ToString().Trim() ?? "";
            if (Array.IndexOf(known, key) < 0)
                throw ConfigBinder.Error(file, kv, $"{kind}.{key}", $"unknown key; expected one of: {string.Join(", ", known)}{Suggest(key, known)}");
            if (kv.Value is { } value)
                values[key] = new ConfigValue(file, $"{kind}.{key}", value);
        }
        return values;
    }

    private static FileRule FileRuleFrom(string file, TableSyntaxBase table, Dictionary<string, ConfigValue> values, string source)
    {
        var path = Required(file, table, values, "file", "path");
        if (!PathGlob.TryParse(path.String(), out var glob, out var error))
            throw ConfigBinder.Error(file, path.Node, path.Key, error);
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
                    _ => throw ConfigBinder.Error(file, opsValue.Node, opsValue.Key, $"unknown operation \"{op}\"; expected read, write or exec"),
                };
            if (ops == 0)
                throw ConfigBinder.Error(file, opsValue.Node, opsValue.Key, "lists no operation; omit ops to mean all of them");
        }
        var action = ToVerdict(Required(file, table, values, "file", "action").OneOf(Actions));
        return new FileRule(glob!, ops, action, $"{source}: {glob!.Pattern}");
    }

    // "any" is one rule per address family: the kernel matches IPv4 and IPv6 destinations
    // (IPv4-mapped IPv6 ones included) against rules of their own family only.
    private static IEnumerable<NetRule> NetRulesFrom(string file, TableSyntaxBase table, Dictionary<string, ConfigValue> values, string source)
    {
        var addressValue = Required(file, table, values, "network", "address");
        if (addressValue.String() != "any")
            return [NetRuleFrom(file, table, values, source, addressValue)];
        var v4 = NetRuleFrom(file, table, values, source, addressValue, (IPAddress.Any, 0));
        return [v4, v4 with { Address = IPAddress.IPv6Any }];
    }

    private static NetRule NetRuleFrom(string file, TableSyntaxBase table, Dictionary<string, ConfigValue> values, string source,
        ConfigValue addressValue, (IPAddress Address, int Prefix)? any = null)
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
            throw ConfigBinder.Error(file, addressValue.Node, addressValue.Key,
                $"\"{text}\" is not an IP address or CIDR network (e.g. \"127.0.0.1\", \"10.0.0.0/8\", \"::1\", \"any\")");
        }
        int port = values.TryGetValue("port", out var p) ? p.Int(0, 65535) : 0;
        var protocol = values.TryGetValue("protocol", out var proto)
            ? proto.OneOf(["tcp", "udp", "any"]) switch { "tcp" => NetProtocol.Tcp, "udp" => NetProtocol.Udp, _ => NetProtocol.Any }
            : NetProtocol.Any;
        var action = ToVerdict(Required(file, table, values, "network", "action").OneOf(Actions));
        return new NetRule(address, prefix, port, protocol, action, source);
    }

    private static UnixRule UnixRuleFrom(string file, TableSyntaxBase table, Dictionary<string, ConfigValue> values, string source)
    {
        var path = Required(file, table, values, "unix", "path");
        string name = path.String();
        if (UnixRule.Invalid(name) is { } error)
            throw ConfigBinder.Error(file, path.Node, path.Key, error);
        var action = ToVerdict(Required(file, table, values, "unix", "action").OneOf(Actions));
        return new UnixRule(name, action, $"{source}: {name}");
    }

    private static InodeRule InodeRuleFrom(string file, TableSyntaxBase table, Dictionary<string, ConfigValue> values,
        string source, long maxTtlSecs, TimeProvider clock)
    {
        ulong inode = (ulong)Required(file, table, values, "rule", "inode").Long(1);
        ulong device = (ulong)Required(file, table, values, "rule", "dev_id").Long(0);
        int syscall = values.TryGetValue("syscall_nr", out var s) ? s.Int(0, 1023) : 0;
        var actionValue = Required(file, table, values, "rule", "action");
        Verdict action = actionValue.Node is IntegerValueSyntax ? (Verdict)actionValue.Int(0, 2) : ToVerdict(actionValue.OneOf(Actions));
        long ttl = values.TryGetValue("ttl_secs", out var t) ? t.Long(0, maxTtlSecs) : 0;
        return new InodeRule(device, inode, syscall, action, ttl == 0 ? null : clock.GetUtcNow().AddSeconds(ttl), $"{source}: inode {inode} dev {device}");
    }

    private static ConfigValue Required(string file, TableSyntaxBase table, Dictionary<string, ConfigValue> values, string kind, string key) =>
        values.TryGetValue(key, out var value) ? value
            : throw ConfigBinder.Error(file, table, $"{kind}.{key}", $"missing; every [[{kind}]] needs {key}");

    private static Verdict ToVerdict(string word) => word switch
    {
        "allow" => Verdict.Allow,
        "deny" => Verdict.Deny,
        _ => Verdict.Trace,
    };

    private static string Suggest(string name, IEnumerable<string> candidates) =>
        ConfigBinder.Closest(name, candidates) is { } close ? $" (did you mean '{close}'?)" : "";
}
