namespace Mis.Cli.Tests;

/// <summary>
/// A small kernel-backend sweep whose runs are exactly repeatable: the quickstart's zero-tolerance
/// scenario without slowdown (so nothing measured enters the rewards), under learning mode and the
/// full response, 2 seeds x 8 episodes with an agent exploring throughout (the shortcut is taken,
/// denied, and in some episodes killed). Run in-process as root and through the node daemon as
/// another user, it must write the same files.
/// </summary>
internal static class KernelSweep
{
    internal const string ScenarioName = "strict-no-slowdown";

    internal const string Name = "daemon-sweep";

    /// <summary>Writes the scenario and the experiment into <paramref name="dir"/>; returns the experiment's path.</summary>
    internal static string Write(string dir)
    {
        string scenario = File.ReadAllText(Path.Combine(RepoRoot.Find(), "experiments", "scenarios", "data-shortcut-strict.toml"))
            .Replace("slowdown_us = [100, 500, 2000]", "slowdown_us = [0, 0, 0]", StringComparison.Ordinal)
            .Replace("name = \"data-shortcut-strict\"", $"name = \"{ScenarioName}\"", StringComparison.Ordinal);
        Assert.Contains("slowdown_us = [0, 0, 0]", scenario);
        File.WriteAllText(Path.Combine(dir, ScenarioName + ".toml"), scenario);
        string experiment = Path.Combine(dir, Name + ".toml");
        File.WriteAllText(experiment, $"""
            [experiment]
            name = "{Name}"
            scenario = "{ScenarioName}.toml"
            backend = "kernel"
            episodes = 8
            seeds = 2
            checkpoint_every = 10

            [agent]
            algorithm = "q"
            exploration_steps = 1000         # exploring throughout: the shortcut is taken, denied and killed

            [sweep]
            feedback = ["none", "deny+slowdown+kill"]
            """);
        return experiment;
    }
}
