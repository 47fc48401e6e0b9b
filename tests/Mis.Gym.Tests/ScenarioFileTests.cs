using Mis.Gym.Scenarios;

namespace Mis.Gym.Tests;

public sealed class ScenarioFileTests
{
    private const string Minimal = """
        [scenario]
        name = "mini"

        [[action]]
        name = "read_input"
        kind = "read"
        path = "/data/in.csv"

        [[action]]
        name = "submit"
        kind = "submit"
        """;

    [Fact]
    public void A_minimal_scenario_gets_the_documented_defaults()
    {
        var s = Support.ParseActions(Minimal, "mini.toml");
        Assert.Equal("mini", s.Name);
        Assert.Equal(100, s.MaxSteps);
        Assert.Equal(0, s.TimeBudgetMs);
        Assert.Equal(3, s.Defcon.NetLockdownLevel);
        Assert.Equal(1000, s.SyscallNs);
        Assert.Equal([3L, 6, 10, 15], s.Defcon.Thresholds);
        Assert.Equal(new RewardSpec(), s.Reward);
        Assert.Equal(10.0, s.Task.Reward);
        Assert.Equal("inline", s.PolicySource);
        Assert.Equal([3, 1], s.Actions.Select(a => a.Syscalls));
        Assert.Equal("mini.toml:4", s.Actions[0].Source);
    }

    [Theory]
    // An unknown key in an action, with a suggestion, at its own line.
    [InlineData("[[action]]\nname = \"a\"\nkind = \"read\"\npth = \"/x\"\n", 4, "action.pth", "did you mean 'path'?")]
    // A kind that does not exist.
    [InlineData("[[action]]\nname = \"a\"\nkind = \"delete\"\n", 3, "action.kind", "expected one of: read, write, list, exec, connect, send, wait, submit")]
    // A key that does not apply to the kind.
    [InlineData("[[action]]\nname = \"w\"\nkind = \"wait\"\nms = 5\npath = \"/x\"\n", 5, "action.path", "does not apply to a wait action")]
    // A missing required key: the error points at the table.
    [InlineData("\n[[action]]\nname = \"r\"\nkind = \"read\"\n", 2, "action.path", "missing; every [[action]] needs path")]
    // A bad address.
    [InlineData("[[action]]\nname = \"c\"\nkind = \"connect\"\naddress = \"example.com\"\nport = 80\n", 4, "action.address", "is not an IP address")]
    // An argument or a path the actuator's line protocol cannot carry.
    [InlineData("[[action]]\nname = \"x\"\nkind = \"exec\"\npath = \"/usr/bin/perl\"\nargs = [\"-e\", \"print 1;\\nexit\"]\n", 5, "action.args", "element 2 (\"print 1;\\nexit\") holds a newline or a tab")]
    [InlineData("[[action]]\nname = \"x\"\nkind = \"exec\"\npath = \"/bin/a\\tb\"\n", 4, "action.path", "holds a newline or a tab")]
    // A value out of range.
    [InlineData("[[action]]\nname = \"r\"\nkind = \"read\"\npath = \"/x\"\nfail_prob = 1.5\n", 5, "action.fail_prob", "expected a number from 0 to 1")]
    // A setting outside any table.
    [InlineData("max_steps = 3\n", 1, "max_steps", "a setting outside any table")]
    // An unknown table.
    [InlineData("[scenari]\nname = \"x\"\n", 1, "scenari", "did you mean 'scenario'?")]
    // [defcon] goes to the config binder, whose errors keep the scenario's line numbers.
    [InlineData("[scenario]\nname = \"x\"\n\n[defcon]\nthresholds = [3, 2, 10, 15]\n", 5, "defcon.thresholds", "strictly increasing")]
    // Inline policy rules go to PolicyFile, whose errors keep the scenario's line numbers.
    [InlineData("[scenario]\nname = \"x\"\n\n[[file]]\npath = \"/a\"\naction = \"block\"\n", 6, "file.action", "expected one of: allow, deny, trace")]
    // Inode rules cannot match a scenario's virtual files.
    [InlineData("[[rule]]\ninode = 5\ndev_id = 1\naction = \"deny\"\n", 1, "rule", "inode rules ([[rule]]) cannot apply")]
    // A table given twice.
    [InlineData("[task]\nreward = 1\n\n[task]\nreward = 2\n", 4, "task", "is already defined")]
    // Syntax errors name the line too.
    [InlineData("[scenario]\nname = \"x\n", 2, "scenario.name", "syntax error")]
    public void Errors_name_the_file_line_and_key(string text, int line, string? key, string detail)
    {
        var e = Support.ParseError(text, "bad.toml");
        Assert.Equal("bad.toml", e.File);
        Assert.Equal(line, e.Line);
        Assert.Equal(key, e.Key);
        Assert.Contains(detail, e.Detail);
        Assert.StartsWith($"bad.toml:{line}:", e.Message);
    }

    [Fact]
    public void Cross_references_are_checked_against_the_actions()
    {
        var unknownRequirement = Support.ParseError(Minimal + "\n[task]\nrequires = [\"read_inptu\"]\n");
        Assert.Equal("task.requires", unknownRequirement.Key);
        Assert.Equal(13, unknownRequirement.Line);
        Assert.Contains("no action is called \"read_inptu\" (did you mean 'read_input'?)", unknownRequirement.Detail);

        var satisfiesNonRequirement = Support.ParseError(Minimal + "\n[[action]]\nname = \"peek\"\nkind = \"read\"\npath = \"/s\"\nsatisfies = [\"read_input\"]\n");
        Assert.Equal("action.satisfies", satisfiesNonRequirement.Key);
        Assert.Equal(16, satisfiesNonRequirement.Line);

        var duplicate = Support.ParseError(Minimal + "\n[[action]]\nname = \"submit\"\nkind = \"wait\"\nms = 1\n");
        Assert.Equal("action.name", duplicate.Key);
        Assert.Contains("already the name of the action at line 9", duplicate.Detail);

        var noSubmit = Support.ParseError("[[action]]\nname = \"w\"\nkind = \"wait\"\nms = 1\n");
        Assert.Contains("no action has kind = \"submit\"", noSubmit.Detail);

        var noActions = Support.ParseError("[scenario]\nname = \"x\"\n");
        Assert.Contains("has no [[action]]", noActions.Detail);
    }

    [Fact]
    public void A_policy_file_is_found_relative_to_the_scenario_and_excludes_inline_rules()
    {
        var dir = Directory.CreateTempSubdirectory("mis-gym-");
        try
        {
            Directory.CreateDirectory(Path.Combine(dir.FullName, "policies"));
            File.WriteAllText(Path.Combine(dir.FullName, "policies", "p.toml"), "[policy]\nname = \"ext\"\n\n[[file]]\npath = \"/data/**\"\naction = \"deny\"\n");
            string scenarioPath = Path.Combine(dir.FullName, "s.toml");
            File.WriteAllText(scenarioPath, Minimal.Replace("name = \"mini\"", "name = \"mini\"\npolicy = \"policies/p.toml\""));
            var s = ScenarioFile.Load(scenarioPath);
            Assert.Equal(Path.Combine(dir.FullName, "policies/p.toml"), s.PolicySource);
            using var env = Envs.MisGym.Make(scenarioPath);
            env.Reset(seed: 0);
            Assert.Equal(Envs.ActionResult.Denied, env.Step(0).Info.Get<Envs.ActionResult>("result"));

            File.AppendAllText(scenarioPath, "\n[[file]]\npath = \"/x\"\naction = \"deny\"\n");
            var both = Assert.Throws<Enforcer.Configuration.ConfigException>(() => ScenarioFile.Load(scenarioPath));
            Assert.Equal("scenario.policy", both.Key);
            Assert.Contains("also has inline rules", both.Detail);

            File.WriteAllText(scenarioPath, Minimal.Replace("name = \"mini\"", "name = \"mini\"\npolicy = \"nope.toml\""));
            var missing = Assert.Throws<Enforcer.Configuration.ConfigException>(() => ScenarioFile.Load(scenarioPath));
            Assert.Equal(3, missing.Line);
            Assert.Contains("policy file \"nope.toml\" not found", missing.Detail);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
