using Mis.Enforcer.Configuration;
using Mis.Enforcer.Policy;

namespace Mis.Enforcer.Tests;

/// <summary>
/// The one error type of the TOML layer (<see cref="TomlDocument"/>) as config.toml and policy
/// files raise it: file:line:column and the dotted key, and a suggestion for a name that is close
/// to a known one. The scenario and experiment kinds are checked in Mis.Gym.Tests.
/// </summary>
public sealed class TomlErrorTests
{
    public enum Kind
    {
        Config,
        Policy,
    }

    [Theory]
    // Unknown keys and tables: named where they are written, with the close known name.
    [InlineData(Kind.Config, "[grpc]\nprot = 7000\n", 2, 1, "grpc.prot", "did you mean 'port'?")]
    [InlineData(Kind.Config, "[defcon]\nnet_lockdown_levl = 2\n", 2, 1, "defcon.net_lockdown_levl", "did you mean 'net_lockdown_level'?")]
    [InlineData(Kind.Policy, "[[file]]\npaht = \"/a\"\naction = \"deny\"\n", 2, 1, "file.paht", "unknown key; expected one of: path, ops, action (did you mean 'path'?)")]
    [InlineData(Kind.Policy, "[[fiel]]\npath = \"/a\"\n", 1, 1, "fiel", "unknown table; expected [policy], [[file]], [[network]], [[unix]] or [[rule]] (did you mean 'file'?)")]
    // Wrong types: at the value, saying what was expected and what was found.
    [InlineData(Kind.Config, "[grpc]\nport = \"x\"\n", 2, 8, "grpc.port", "expected an integer, found a string (\"x\")")]
    [InlineData(Kind.Config, "[defcon]\nnet_lockdown_level = 7\n", 2, 22, "defcon.net_lockdown_level", "7 is out of range; expected an integer from 0 to 5")]
    [InlineData(Kind.Policy, "[[network]]\naddress = \"any\"\nport = \"80\"\naction = \"deny\"\n", 3, 8, "network.port", "expected an integer, found a string (\"80\")")]
    [InlineData(Kind.Policy, "[policy]\nbuiltin = 1\n", 2, 11, "policy.builtin", "expected a boolean (true or false), found an integer (1)")]
    // Syntax errors: the line and column of the mistake, and the key it is in.
    [InlineData(Kind.Config, "[grpc]\nport = 70 00\n", 2, 11, "grpc.port", "syntax error")]
    [InlineData(Kind.Policy, "[[file]]\npath = \"/a\n", 2, 11, "file.path", "syntax error")]
    public void Errors_name_file_line_column_and_key(Kind kind, string text, int line, int column, string key, string detail)
    {
        string file = kind == Kind.Config ? "config.toml" : "policy.toml";
        var e = Assert.Throws<ConfigException>(() =>
        {
            if (kind == Kind.Config)
                MisConfig.Parse(text, file);
            else
                PolicyFile.Parse(text, file);
        });
        Assert.Equal((file, line, column, key), (e.File, e.Line, e.Column, e.Key));
        Assert.Contains(detail, e.Detail);
        Assert.Equal($"{file}:{line}:{column}: {key}: {e.Detail}", e.Message);
    }

    [Fact]
    public void A_file_that_cannot_be_read_names_the_file_and_what_it_is()
    {
        string missing = Path.Combine(Path.GetTempPath(), $"mis-missing-{Guid.NewGuid():N}.toml");
        var e = Assert.Throws<ConfigException>(() => PolicyFile.Load(missing));
        Assert.Equal((missing, 0, 0, (string?)null), (e.File, e.Line, e.Column, e.Key));
        Assert.StartsWith("cannot read the policy file: ", e.Detail);
    }

    [Fact]
    public void The_net_lockdown_level_is_a_defcon_setting_with_its_default_declared_once()
    {
        Assert.Equal(3, MisConfig.Default.Defcon.NetLockdownLevel);
        Assert.Equal(0, MisConfig.Parse("[defcon]\nnet_lockdown_level = 0\n", "config.toml").Defcon.NetLockdownLevel);
    }
}
