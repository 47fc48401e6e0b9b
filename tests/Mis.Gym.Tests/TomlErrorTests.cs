using Mis.Enforcer.Configuration;
using Mis.Gym.Experiments;
using Mis.Gym.Scenarios;
using Mis.Gym.Tests.Experiments;

namespace Mis.Gym.Tests;

/// <summary>
/// The one error type of the TOML layer as scenario and experiment files raise it (config.toml and
/// policy files: Mis.Enforcer.Tests): file:line:column and the dotted key, and a suggestion for a
/// name that is close to a known one; and the tables a scenario borrows from other kinds (its
/// inline policy, its <c>[defcon]</c>) report at the scenario's own positions.
/// </summary>
public sealed class TomlErrorTests
{
    public enum Kind
    {
        Scenario,
        Experiment,
    }

    private const string Submit = "\n[[action]]\nname = \"go\"\nkind = \"submit\"\n";

    [Theory]
    // Unknown keys and tables, with the close known name.
    [InlineData(Kind.Scenario, "[scenario]\nmax_step = 5\n", 2, 1, "scenario.max_step", "(did you mean 'max_steps'?)")]
    [InlineData(Kind.Scenario, "[sennario]\nname = \"x\"\n", 1, 1, "sennario", "unknown table; expected [scenario]")]
    [InlineData(Kind.Scenario, "[sennario]\nname = \"x\"\n", 1, 1, "sennario", "(did you mean 'scenario'?)")]
    [InlineData(Kind.Scenario, "[defcon]\nthreshold = [1, 2, 3, 4]\n", 2, 1, "defcon.threshold", "did you mean 'thresholds'?")]
    [InlineData(Kind.Scenario, "[[file]]\npaht = \"/a\"\naction = \"deny\"\n", 2, 1, "file.paht", "(did you mean 'path'?)")]
    [InlineData(Kind.Experiment, "[experiment]\nepisode = 3\n", 2, 1, "experiment.episode", "(did you mean 'episodes'?)")]
    [InlineData(Kind.Experiment, "[agnet]\nalgorithm = \"random\"\n", 1, 1, "agnet", "(did you mean 'agent'?)")]
    [InlineData(Kind.Experiment, "[experiment]\nscenario = \"s.toml\"\nepisodes = 3\nseeds = 2\n\n[agent]\nalgorithm = \"random\"\n\n[report]\nwindows = 5\n", 10, 1, "report.windows", "(did you mean 'window'?)")]
    // Wrong types, at the value.
    [InlineData(Kind.Scenario, "[task]\nreward = \"lots\"\n", 2, 10, "task.reward", "expected a number, found a string (\"lots\")")]
    [InlineData(Kind.Scenario, "[scenario]\nnet_lockdown_level = \"3\"\n" + Submit, 2, 22, "scenario.net_lockdown_level", "expected an integer, found a string (\"3\")")]
    [InlineData(Kind.Scenario, "[defcon]\nkill_at_level_1 = 1\n", 2, 19, "defcon.kill_at_level_1", "expected a boolean (true or false), found an integer (1)")]
    [InlineData(Kind.Experiment, "[experiment]\nscenario = \"s.toml\"\nepisodes = 3\nseeds = \"five\"\n\n[agent]\nalgorithm = \"random\"\n", 4, 9, "experiment.seeds", "found a string (\"five\")")]
    [InlineData(Kind.Experiment, "[experiment]\nscenario = \"s.toml\"\nepisodes = 3\nseeds = 2\n\n[agent]\nalgorithm = \"random\"\n\n[report]\nwindow = 2.5\n", 10, 10, "report.window", "expected an integer, found a float (2.5)")]
    // Syntax errors: the line, the column and the key they are in.
    [InlineData(Kind.Scenario, "[task]\nreward = 1.0.0\n", 2, 13, "task.reward", "syntax error")]
    [InlineData(Kind.Experiment, "[experiment]\nname = \"x\n", 2, 10, "experiment.name", "syntax error")]
    public void Errors_name_file_line_column_and_key(Kind kind, string text, int line, int column, string key, string detail)
    {
        string file = kind == Kind.Scenario ? "scenario.toml" : "experiment.toml";
        var e = Assert.Throws<ConfigException>(() =>
        {
            if (kind == Kind.Scenario)
                ScenarioFile.Parse(text, file);
            else
                ExperimentSupport.Parse(text, file);
        });
        Assert.Equal((file, line, column, key), (e.File, e.Line, e.Column, e.Key));
        Assert.Contains(detail, e.Detail);
        Assert.Equal($"{file}:{line}:{column}: {key}: {e.Detail}", e.Message);
    }

    [Theory]
    [InlineData("[scenario]\nname = \"n\"\n" + Submit, 3)]
    [InlineData("[scenario]\nnet_lockdown_level = 2\n" + Submit, 2)]
    [InlineData("[defcon]\nnet_lockdown_level = 1\n" + Submit, 1)]
    public void The_net_lockdown_level_is_read_into_the_defcon_ladder(string text, int level)
    {
        Assert.Equal(level, Support.ParseActions(text, "s.toml").Defcon.NetLockdownLevel);
    }

    [Fact]
    public void The_net_lockdown_level_is_set_in_one_place_only()
    {
        var e = Support.ParseError("[scenario]\nnet_lockdown_level = 2\n\n[defcon]\nnet_lockdown_level = 1\n" + Submit);
        Assert.Equal((2, 22, "scenario.net_lockdown_level"), (e.Line, e.Column, e.Key));
        Assert.Contains("also set in [defcon]", e.Detail);
    }

    [Fact]
    public void The_step_budget_defaults_once_per_kind()
    {
        Assert.Equal(ActionScenario.DefaultMaxSteps, Support.ParseActions("[scenario]\nname = \"n\"\n" + Submit, "s.toml").MaxSteps);
        var command = Support.ParseCommand("[workload]\ncommand = [\"/bin/true\"]\ntimeout_ms = 1000\nstep_ms = 100\n", "c.toml");
        Assert.Equal(command.Workload.StepsForTimeout, command.MaxSteps);
        Assert.Equal(11, command.MaxSteps);
    }

    [Fact]
    public void An_experiment_on_a_command_scenario_is_an_error_at_its_scenario_key()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("cmd.toml"), "[workload]\ncommand = [\"/bin/true\"]\n");
        string file = dir.File("exp.toml");
        var e = Assert.Throws<ConfigException>(() => ExperimentSupport.Parse(
            "[experiment]\nscenario = \"cmd.toml\"\nepisodes = 3\nseeds = 1\n\n[agent]\nalgorithm = \"random\"\n", file));
        Assert.Equal((2, 12, "experiment.scenario"), (e.Line, e.Column, e.Key));
        Assert.Contains("runs a command ([workload])", e.Detail);
    }
}
