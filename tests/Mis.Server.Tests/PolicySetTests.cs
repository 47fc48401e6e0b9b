using Mis.Enforcer.Policy;
using Mis.Server.Engine;

namespace Mis.Server.Tests;

/// <summary>Policy files: merged in order with the built-in rules last, resolved relative to the config file.</summary>
public sealed class PolicySetTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mis-server-unit-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Policy_files_merge_in_order_with_the_builtin_rules_last_once()
    {
        string a = Path.Combine(_dir, "a.toml"), b = Path.Combine(_dir, "b.toml");
        File.WriteAllText(a, "[[file]]\npath = \"/srv/a\"\naction = \"deny\"\n[[network]]\naddress = \"10.0.0.0/8\"\naction = \"deny\"\n");
        File.WriteAllText(b, "[policy]\ndefault = \"deny\"\n[[file]]\npath = \"/srv/b\"\naction = \"allow\"\n[[rule]]\ninode = 5\ndev_id = 6\naction = 1\n");

        var merged = PolicySet.Load([a, b], 86400, TimeProvider.System);

        Assert.Equal(["/srv/a", "/srv/b"], merged.FileRules.Take(2).Select(r => r.Path.Pattern));
        Assert.Equal(BuiltinPolicy.FileRules.Length, merged.FileRules.Count - 2);
        Assert.Single(merged.NetRules);
        Assert.Single(merged.InodeRules);
        Assert.Equal(Verdict.Deny, merged.DefaultAction);
        Assert.Equal("a+b", merged.Name);
        Assert.Equal(BuiltinPolicy.Source, PolicySet.Load([], 86400, TimeProvider.System).Name);
    }

    [Fact]
    public void Relative_policy_files_are_relative_to_the_config_file()
    {
        Assert.Equal(["/etc/mis/p.toml", "/abs.toml"], PolicySet.Resolve(["p.toml", "/abs.toml"], "/etc/mis"));
    }
}
