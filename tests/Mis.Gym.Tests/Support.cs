using Mis.Enforcer.Configuration;
using Mis.Gym.Envs;
using Mis.Gym.Scenarios;

namespace Mis.Gym.Tests;

/// <summary>Finding the shipped scenarios and running a scenario action by name.</summary>
internal static class Support
{
    internal static string RepoRoot
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "MIS.sln")))
                    return dir.FullName;
            }
            throw new InvalidOperationException("no MIS.sln above the test binary");
        }
    }

    internal static string ScenarioDir => Path.Combine(RepoRoot, "experiments", "scenarios");

    internal static string ScenarioPath(string name) => Path.Combine(ScenarioDir, name + ".toml");

    /// <summary>A shipped action scenario.</summary>
    internal static ActionScenario Load(string name) => Assert.IsType<ActionScenario>(ScenarioFile.Load(ScenarioPath(name)));

    /// <summary>A shipped command ([workload]) scenario.</summary>
    internal static CommandScenario LoadCommand(string name) => Assert.IsType<CommandScenario>(ScenarioFile.Load(ScenarioPath(name)));

    /// <summary>An action scenario from text.</summary>
    internal static ActionScenario ParseActions(string text, string file) => Assert.IsType<ActionScenario>(ScenarioFile.Parse(text, file));

    /// <summary>A command scenario from text.</summary>
    internal static CommandScenario ParseCommand(string text, string file) => Assert.IsType<CommandScenario>(ScenarioFile.Parse(text, file));

    /// <summary>The shipped action scenarios (every backend runs them).</summary>
    internal static IEnumerable<string> ShippedScenarioNames() => AllShipped().Where(n => ScenarioFile.Load(ScenarioPath(n)) is ActionScenario);

    /// <summary>The shipped command ([workload]) scenarios (kernel only).</summary>
    internal static IEnumerable<string> ShippedCommandScenarioNames() => AllShipped().Where(n => ScenarioFile.Load(ScenarioPath(n)) is CommandScenario);

    private static IEnumerable<string> AllShipped() =>
        Directory.GetFiles(ScenarioDir, "*.toml").Select(Path.GetFileNameWithoutExtension).Order()!;

    /// <summary>The error a scenario text raises; fails the test when it parses.</summary>
    internal static ConfigException ParseError(string text, string file = "bad.toml") =>
        Assert.Throws<ConfigException>(() => ScenarioFile.Parse(text, file));

    internal static StepResult<float[]> Do(this IEnv<float[], int> env, ActionScenario scenario, string action)
    {
        int index = scenario.IndexOf(action);
        Assert.True(index >= 0, $"no action {action}");
        return env.Step(index);
    }

    internal static RewardTerms Terms(this Info info) => info.Get<RewardTerms>("reward_terms");
}
