using System.Globalization;
using Mis.Gym.Agents;
using Mis.Gym.Experiments;

namespace Mis.Gym.Tests.Experiments;

/// <summary>A temporary directory, deleted with everything in it on dispose.</summary>
internal sealed class TempDir : IDisposable
{
    internal TempDir() => Directory.CreateDirectory(Path);

    internal string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "mis-exp-test-" + Guid.NewGuid().ToString("N"));

    internal string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        if (Directory.Exists(Path))
            Directory.Delete(Path, recursive: true);
    }
}

/// <summary>Experiment texts and the test agents the runner tests plug in.</summary>
internal static class ExperimentSupport
{
    /// <summary>The data-shortcut scenario's path as a TOML string (absolute, so the experiment file may live anywhere).</summary>
    internal static string DataShortcut => Support.ScenarioPath("data-shortcut").Replace("\\", "\\\\", StringComparison.Ordinal);

    /// <summary>An experiment over data-shortcut; <paramref name="extra"/> is appended (more tables).</summary>
    internal static string Text(string algorithm = "random", int episodes = 12, string seeds = "2", int checkpointEvery = 5, string extra = "", string agentExtra = "") => $"""
        [experiment]
        name = "test"
        scenario = "{DataShortcut}"
        backend = "sim"
        episodes = {episodes}
        seeds = {seeds}
        checkpoint_every = {checkpointEvery}

        [agent]
        algorithm = "{algorithm}"
        {agentExtra}

        {extra}
        """;

    internal static Experiment Parse(string text, string file = "exp.toml") => ExperimentFile.Parse(text, file, Maker);

    /// <summary>The factory with the test agents added: <c>counting</c> (deterministic, learns, saves its whole state) and <c>scripted</c>.</summary>
    internal static IAgent Maker(string algorithm, int observationSize, int actionCount, int seed, IReadOnlyDictionary<string, object> hyperparameters) => algorithm switch
    {
        "counting" => new CountingAgent(actionCount, seed),
        "scripted" => new ScriptedAgent(hyperparameters.TryGetValue("stop_after", out var s) ? (int)(long)s : 0),
        _ => AgentFactory.Create(algorithm, observationSize, actionCount, seed, hyperparameters),
    };
}

/// <summary>
/// A deterministic learner whose whole state is saved: epsilon-greedy over per-action mean
/// rewards with its own xorshift generator (state included in <see cref="Save"/>), so a run resumed
/// from a checkpoint continues exactly as an uninterrupted one.
/// </summary>
internal sealed class CountingAgent(int actions, int seed) : IAgent
{
    private double[] _sum = new double[actions];
    private long[] _count = new long[actions];
    private ulong _state = (ulong)seed * 0x9E3779B97F4A7C15UL + 1;

    public string Algorithm => "counting";

    public int Act(float[] observation) => Next() % 4 == 0 ? (int)(Next() % (ulong)actions) : ActGreedy(observation);

    public int ActGreedy(float[] observation)
    {
        int best = 0;
        for (int a = 1; a < actions; a++)
        {
            if (Mean(a) > Mean(best))
                best = a;
        }
        return best;
    }

    public void Observe(in Transition t)
    {
        _sum[t.Action] += t.Reward;
        _count[t.Action]++;
    }

    public void Save(string directory) => File.WriteAllLines(Path.Combine(directory, "counting.txt"),
        [_state.ToString(CultureInfo.InvariantCulture), string.Join(' ', _sum.Select(s => s.ToString("R", CultureInfo.InvariantCulture))), string.Join(' ', _count)]);

    public void Load(string directory)
    {
        var lines = File.ReadAllLines(Path.Combine(directory, "counting.txt"));
        _state = ulong.Parse(lines[0], CultureInfo.InvariantCulture);
        _sum = lines[1].Split(' ').Select(s => double.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        _count = lines[2].Split(' ').Select(s => long.Parse(s, CultureInfo.InvariantCulture)).ToArray();
    }

    public void Dispose()
    {
    }

    private double Mean(int a) => _count[a] == 0 ? 1e9 : _sum[a] / _count[a];

    private ulong Next()
    {
        _state ^= _state << 13;
        _state ^= _state >> 7;
        _state ^= _state << 17;
        return _state;
    }
}

/// <summary>
/// data-shortcut by script: the forbidden shortcut (peek_answers, submit) for its first
/// <c>stop_after</c> episodes, the honest path (read_records, read_schema, write_report, submit) after.
/// </summary>
internal sealed class ScriptedAgent(int stopAfter) : IAgent
{
    private static readonly int[] Shortcut = [4, 7];
    private static readonly int[] Honest = [1, 2, 3, 7];
    private int _episode;
    private int _step;

    public string Algorithm => "scripted";

    public int Act(float[] observation)
    {
        var script = _episode < stopAfter ? Shortcut : Honest;
        return script[Math.Min(_step, script.Length - 1)];
    }

    public int ActGreedy(float[] observation) => Act(observation);

    public void Observe(in Transition t)
    {
        _step++;
        if (t.Done)
            (_episode, _step) = (_episode + 1, 0);
    }

    public void Save(string directory) => File.WriteAllText(Path.Combine(directory, "episode.txt"), _episode.ToString(CultureInfo.InvariantCulture));

    public void Load(string directory) => _episode = int.Parse(File.ReadAllText(Path.Combine(directory, "episode.txt")), CultureInfo.InvariantCulture);

    public void Dispose()
    {
    }
}
