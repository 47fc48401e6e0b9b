using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Mis.Gym.Agents;
using Mis.Gym.Envs;
using Mis.Gym.Scenarios;

namespace Mis.Gym.Experiments;

/// <summary>Where an experiment stands, for a progress display.</summary>
/// <param name="Done">Episodes finished, including those found finished on disk.</param>
/// <param name="Total">Episodes in the whole experiment.</param>
/// <param name="DoneAtStart">Episodes already finished when this invocation started (they do not count toward the rate).</param>
/// <param name="Elapsed">Time since this invocation started.</param>
/// <param name="Current">The run in progress: <c>config / seed N</c>.</param>
public readonly record struct ExperimentProgress(long Done, long Total, long DoneAtStart, TimeSpan Elapsed, string Current)
{
    /// <summary>Episodes per second in this invocation, or 0 before the first.</summary>
    public double Rate => Elapsed.TotalSeconds > 0 ? (Done - DoneAtStart) / Elapsed.TotalSeconds : 0;

    /// <summary>Estimated time left at the current rate, or null before there is a rate.</summary>
    public TimeSpan? Eta => Rate > 0 ? TimeSpan.FromSeconds((Total - Done) / Rate) : null;
}

/// <summary>How one (config, seed) run ended in this invocation.</summary>
public enum RunStatus
{
    /// <summary>It ran to its last episode (possibly resumed from a checkpoint).</summary>
    Completed,
    /// <summary>It was already complete on disk.</summary>
    Skipped,
    /// <summary>It threw; the error is recorded in its <c>status.json</c> and the other runs went on.</summary>
    Failed,
}

/// <summary>The outcome of one (config, seed) run.</summary>
public sealed record RunOutcome(ExperimentConfig Config, int Seed, string Directory, RunStatus Status, int ResumedFrom, string? Error);

/// <summary>
/// Runs an experiment into a run directory: for each config of the grid and each seed, an agent
/// trained for the config's episodes on a fresh env, every step written (<see cref="RunFiles"/>).
/// <list type="bullet">
/// <item>Determinism: the agent is made with the run's seed and episode <c>e</c> is reset with
/// <see cref="EpisodeSeed"/>(seed, e), so on the simulator a run is fully determined by its seed
/// (and a deterministic agent), resumed or not.</item>
/// <item>Resume: every <see cref="Experiment.CheckpointEvery"/> episodes (and at the end, and on
/// cancellation) the agent is saved and the files' lengths recorded in <c>checkpoint.json</c>. A
/// rerun into the same directory skips complete runs and continues a partial one from its
/// checkpoint, the files cut back to the recorded lengths: what a crash wrote after the
/// checkpoint is redone, finished episodes before it are kept.</item>
/// <item>TensorBoard: each run's episodes also go to an events file under <c>tensorboard/</c>
/// (<see cref="TensorBoardEvents"/>), appended as they finish and rewritten from <c>episodes.csv</c>
/// when a run resumes.</item>
/// <item>Isolation: a run that throws is recorded as failed (<c>status.json</c> with the error) and
/// the others go on; the next invocation retries it from its checkpoint.</item>
/// <item>Shards: with <see cref="Shard"/> set, only that share of the runs, into a directory other
/// shards share at the same time (see <see cref="Shard"/>); <c>mis report</c> merges them.</item>
/// </list>
/// </summary>
public sealed partial class ExperimentRunner
{
    private readonly Experiment _experiment;
    private readonly string _outDirectory;
    private readonly AgentMaker _makeAgent;

    /// <summary>Prepares a runner.</summary>
    /// <param name="experiment">The experiment.</param>
    /// <param name="outDirectory">The run directory (created if missing; an existing one is resumed).</param>
    /// <param name="makeAgent">Makes agents (default <see cref="AgentFactory.Create"/>).</param>
    public ExperimentRunner(Experiment experiment, string outDirectory, AgentMaker? makeAgent = null)
    {
        _experiment = experiment;
        _outDirectory = Path.GetFullPath(outDirectory);
        _makeAgent = makeAgent ?? AgentFactory.Create;
    }

    /// <summary>The run directory.</summary>
    public string OutDirectory => _outDirectory;

    /// <summary>The reset seed of episode <paramref name="episode"/> of the run with <paramref name="seed"/> (SplitMix64 of both, 31 bits).</summary>
    internal static int EpisodeSeed(int seed, int episode)
    {
        ulong z = ((ulong)(uint)seed << 32 | (uint)episode) + 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return (int)((z ^ (z >> 31)) & 0x7FFFFFFF);
    }

    /// <summary>
    /// The share of the runs this runner runs (default: all of them). Shards of one sweep share the
    /// run directory: each writes only its runs' directories, the description files
    /// (<c>experiment.toml</c>, <c>experiment.json</c>, every <c>config.json</c>) are published once
    /// and must be identical across shards, and <c>shards/</c> gets one state file per shard.
    /// </summary>
    public Shard Shard { get; init; } = Shard.Whole;

    /// <summary>Runs every (config, seed) of <see cref="Shard"/> not yet complete; stops at an episode boundary when cancelled (after a checkpoint).</summary>
    /// <param name="progress">Called after every episode (and once at the start); its totals are this shard's.</param>
    /// <param name="cancel">Stops the experiment; rerun to resume.</param>
    /// <returns>One outcome per (config, seed) of the shard, in experiment order.</returns>
    /// <exception cref="OperationCanceledException">Cancelled; what finished is on disk.</exception>
    /// <exception cref="InvalidOperationException">The directory holds runs of a config that differs from this experiment's (resuming would mix them), or, for a shard, another experiment's description.</exception>
    public IReadOnlyList<RunOutcome> Run(Action<ExperimentProgress>? progress = null, CancellationToken cancel = default)
    {
        CheckSameConfigs();
        CheckAnomalyModels();
        Directory.CreateDirectory(_outDirectory);
        WriteDescription();
        // Normal behaviour is collected before anything is scored (see ExperimentRunner.Anomaly).
        var runs = CollectionRuns().Concat(Shard.Select(_experiment.Runs)).ToList();
        var clock = Stopwatch.StartNew();
        long total = runs.Sum(r => (long)r.Config.Episodes);
        long done = runs.Sum(r => (long)Math.Min(CheckpointedEpisodes(SeedDirectory(r.Config, r.Seed)), r.Config.Episodes));
        long doneAtStart = done;
        var state = Shard.IsWhole ? null : new ShardState(_outDirectory, Shard, runs.Count);
        state?.Write(ShardState.Running);
        progress?.Invoke(new ExperimentProgress(done, total, doneAtStart, clock.Elapsed, ""));

        var outcomes = new List<RunOutcome>();
        try
        {
            foreach (var (config, seed) in runs)
            {
                cancel.ThrowIfCancellationRequested();
                string dir = SeedDirectory(config, seed);
                string current = $"{config.Label} / seed {seed}";
                int before = Math.Min(CheckpointedEpisodes(dir), config.Episodes);
                long runStart = done - before;
                try
                {
                    var outcome = RunOne(config, seed, dir, episodeDone =>
                    {
                        done = runStart + episodeDone;
                        progress?.Invoke(new ExperimentProgress(done, total, doneAtStart, clock.Elapsed, current));
                    }, cancel);
                    outcomes.Add(outcome);
                }
                catch (OperationCanceledException)
                {
                    throw;
                }
                catch (Exception e)
                {
                    // The run is lost from its checkpoint on; the others are not. Count its episodes
                    // as done for the progress total so the ETA stays honest.
                    WriteStatus(dir, seed, "failed", CheckpointedEpisodes(dir), $"{e.GetType().Name}: {e.Message}");
                    outcomes.Add(new RunOutcome(config, seed, dir, RunStatus.Failed, before, $"{e.GetType().Name}: {e.Message}"));
                    done = runStart + config.Episodes;
                    progress?.Invoke(new ExperimentProgress(done, total, doneAtStart, clock.Elapsed, current));
                }
                state?.CountOutcome(outcomes[^1].Status);
            }
        }
        catch (OperationCanceledException)
        {
            state?.Write(ShardState.Interrupted);
            throw;
        }
        finally
        {
            DisposeScorer();
        }
        state?.Write(ShardState.Finished);
        return outcomes;
    }

    private string SeedDirectory(ExperimentConfig config, int seed) => RunFiles.SeedDirectory(Path.Combine(_outDirectory, config.DirectoryName), seed);

    // The files that say what the experiment is. The whole experiment rewrites them (a rerun with
    // more episodes or seeds extends the runs). Shards write them at the same moment into a shared
    // directory: published once, and a shard whose description differs from what is there belongs
    // to another experiment (or the same file with other options) and must not mix its runs in.
    private void WriteDescription()
    {
        var files = new List<(string Path, string Text)>
        {
            (Path.Combine(_outDirectory, RunFiles.ExperimentCopy), _experiment.Text),
            (Path.Combine(_outDirectory, RunFiles.ExperimentJson), RunFiles.JsonText(ExperimentJson(_experiment))),
        };
        files.AddRange(_experiment.Configs.Select(c => (Path.Combine(_outDirectory, c.DirectoryName, RunFiles.Config), RunFiles.JsonText(ConfigJson(c)))));
        foreach (var (path, text) in files)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            if (Shard.IsWhole)
                RunFiles.WriteTextAtomic(path, text);
            else if (RunFiles.PublishOnce(path, text) is { } existing)
                throw new InvalidOperationException(
                    $"{path} describes another experiment than shard {Shard}'s ({FirstDifference(existing, text)}): the shards of one sweep must run the same " +
                    "experiment file with the same --episodes and --seeds; use another --out for another experiment, or delete the directory to start over");
        }
    }

    private static string FirstDifference(string existing, string wanted)
    {
        var a = existing.Split('\n');
        var b = wanted.Split('\n');
        int line = 0;
        while (line < a.Length && line < b.Length && a[line] == b[line])
            line++;
        static string At(string[] lines, int i) => i < lines.Length ? $"\"{lines[i].Trim()}\"" : "nothing";
        return $"line {line + 1} there is {At(a, line)}, this shard's is {At(b, line)}";
    }

    // Resuming continues checkpoints; one made under other settings (another scenario, agent or
    // hyperparameters) must not be continued as if it were this config's. The episode count may
    // change: more episodes extend a run.
    private void CheckSameConfigs()
    {
        foreach (var config in _experiment.Configs)
        {
            string path = Path.Combine(_outDirectory, config.DirectoryName, RunFiles.Config);
            if (RunFiles.ReadJson(path) is not { } existing)
                continue;
            var wanted = ConfigJson(config);
            existing.Remove("episodes");
            wanted.Remove("episodes");
            if (!JsonNode.DeepEquals(existing, wanted))
                throw new InvalidOperationException(
                    $"{path} describes another configuration than the experiment's \"{config.Label}\" ({existing.ToJsonString()} vs {wanted.ToJsonString()}); " +
                    "resuming would mix their runs: use another --out, or delete the directory to start over");
        }
    }

    private RunOutcome RunOne(ExperimentConfig config, int seed, string dir, Action<int> episodeDone, CancellationToken cancel)
    {
        Directory.CreateDirectory(dir);
        var status = RunFiles.ReadJson(Path.Combine(dir, RunFiles.Status));
        var checkpoint = RunFiles.ReadJson(Path.Combine(dir, RunFiles.Checkpoint));
        int start = checkpoint?["episodes"]?.GetValue<int>() ?? 0;
        string tensorBoardDir = RunFiles.TensorBoardDirectory(_outDirectory, config.DirectoryName, seed);
        if (status?["status"]?.GetValue<string>() == "complete" && start >= config.Episodes)
        {
            TensorBoardEvents.WriteIfMissing(tensorBoardDir, Path.Combine(dir, RunFiles.Episodes));
            return new RunOutcome(config, seed, dir, RunStatus.Skipped, start, null);
        }

        var layout = new ObservationLayout(config.Scenario);
        var watch = WatchFor(config);
        using var agent = ReferenceEquals(config, _collectionConfig) ? RandomAgent.Among(MisGym.AllowedActions(config.Scenario), seed)
            : _makeAgent(config.Algorithm, layout.Names.Count, config.Scenario.Actions.Count, seed, config.Hyperparameters);
        if (checkpoint is not null && start > 0)
            agent.Load(Path.Combine(dir, checkpoint["agent"]!.GetValue<string>()));
        else
            start = 0;
        WriteStatus(dir, seed, "running", start, null);

        using var trajectory = Open(Path.Combine(dir, RunFiles.Trajectory), checkpoint?["trajectory_csv"], RunFiles.TrajectoryHeader, start);
        using var trajectoryJson = Open(Path.Combine(dir, RunFiles.TrajectoryJson), checkpoint?["trajectory_jsonl"], null, start);
        using var episodes = Open(Path.Combine(dir, RunFiles.Episodes), checkpoint?["episodes_csv"], RunFiles.EpisodesHeader, start);
        // The events file restarts from the episodes kept at the checkpoint: none twice, none from after it.
        episodes.Flush();
        using var tensorBoard = TensorBoardEvents.Start(tensorBoardDir, start > 0 ? RunFiles.ReadEpisodes(Path.Combine(dir, RunFiles.Episodes)) : []);
        using var env = MisGym.Make(config.Scenario, config.Backend, config.Feedback, watch);
        var actions = config.Scenario.Actions;
        episodeDone(start);

        int episode = start;
        for (; episode < config.Episodes; episode++)
        {
            if (cancel.IsCancellationRequested)
            {
                Checkpoint(dir, agent, episode, trajectory, trajectoryJson, episodes, tensorBoard);
                WriteStatus(dir, seed, "interrupted", episode, null);
                cancel.ThrowIfCancellationRequested();
            }
            var record = RunEpisode(env, agent, actions, seed, episode, trajectory, trajectoryJson);
            if (watch is { RecordTraces: true })
                WriteTraces(dir, record, watch);
            episodes.WriteLine(RunFiles.Csv(record));
            tensorBoard.Append(record);
            if ((episode + 1) % _experiment.CheckpointEvery == 0 && episode + 1 < config.Episodes)
                Checkpoint(dir, agent, episode + 1, trajectory, trajectoryJson, episodes, tensorBoard);
            episodeDone(episode + 1);
        }
        Checkpoint(dir, agent, episode, trajectory, trajectoryJson, episodes, tensorBoard);
        WriteStatus(dir, seed, "complete", episode, null);
        return new RunOutcome(config, seed, dir, RunStatus.Completed, start, null);
    }

    private static EpisodeRecord RunEpisode(IEnv<float[], int> env, IAgent agent, IReadOnlyList<ScenarioAction> actions,
        int seed, int episode, StreamWriter trajectory, StreamWriter trajectoryJson)
    {
        var obs = env.Reset(EpisodeSeed(seed, episode)).Observation;
        double ret = 0, task = 0, slowdown = 0, denial = 0, kill = 0, anomaly = 0, slowdownMs = 0;
        long violations = 0;
        int minDefcon = 5, steps = 0;
        int? score = null;
        bool killed = false, success = false, killedByScorer = false;
        while (true)
        {
            int action = agent.Act(obs);
            var r = env.Step(action);
            agent.Observe(new Transition(obs, action, r.Reward, r.Observation, r.Terminated, r.Truncated));
            var info = r.Info;
            var result = info.Get<ActionResult>("result");
            var terms = info.Get<RewardTerms>("reward_terms");
            int defcon = info.Get<int>("defcon");
            long count = info.Get<long>("violations");
            slowdownMs = info.Get<long>("slowdown_ns") / 1e6;
            score = info.TryGetValue("anomaly_score", out var s) ? (int)s : score;
            killedByScorer |= info.TryGetValue("anomaly_killed", out var k) && (bool)k;
            var step = new StepRecord(episode, steps, action, actions[action].Name, result, r.Reward, terms, defcon, count,
                count > violations, slowdownMs, info.Get<long>("time_ns") / 1e6, r.Terminated, r.Truncated, score);
            trajectory.WriteLine(RunFiles.Csv(step));
            trajectoryJson.WriteLine(RunFiles.Json(step));
            steps++;
            violations = count;
            ret += r.Reward;
            (task, slowdown, denial, kill, anomaly) = (task + terms.Task, slowdown + terms.Slowdown, denial + terms.Denial, kill + terms.Kill, anomaly + terms.Anomaly);
            minDefcon = Math.Min(minDefcon, defcon);
            killed |= result == ActionResult.Killed;
            success |= result == ActionResult.Ok && actions[action].Kind == ActionKind.Submit;
            if (r.Done)
                break;
            obs = r.Observation;
        }
        return new EpisodeRecord(episode, ret, task, slowdown, denial, kill, violations, minDefcon, killed, success, steps, slowdownMs,
            anomaly, killedByScorer, score);
    }

    // Opens a run file for appending at the checkpoint: cut back to its recorded length (a fresh
    // start without a checkpoint: emptied, header written).
    private static StreamWriter Open(string path, JsonNode? length, string? header, int start)
    {
        var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.Write, FileShare.Read);
        long keep = start > 0 && length is not null ? length.GetValue<long>() : 0;
        if (keep > stream.Length)
        {
            stream.Dispose();
            throw new InvalidDataException($"{path} is shorter ({new FileInfo(path).Length} bytes) than its checkpoint says ({keep}); delete the run directory to start over");
        }
        stream.SetLength(keep);
        stream.Seek(keep, SeekOrigin.Begin);
        var writer = new StreamWriter(stream, new UTF8Encoding(false), 1 << 16) { NewLine = "\n" };
        if (keep == 0 && header is not null)
            writer.WriteLine(header);
        return writer;
    }

    // Saves the agent into a new directory, then points checkpoint.json at it with the files'
    // lengths (written atomically last: a crash before it leaves the previous checkpoint valid).
    // The events file needs no length: a restart rewrites it from episodes.csv.
    private static void Checkpoint(string dir, IAgent agent, int episodes, StreamWriter trajectory, StreamWriter trajectoryJson, StreamWriter episodesCsv,
        TensorBoardEvents tensorBoard)
    {
        trajectory.Flush();
        trajectoryJson.Flush();
        episodesCsv.Flush();
        tensorBoard.Flush();
        string name = $"checkpoint-{episodes:D7}";
        string agentDir = Path.Combine(dir, name);
        if (Directory.Exists(agentDir))
            Directory.Delete(agentDir, recursive: true);
        Directory.CreateDirectory(agentDir);
        agent.Save(agentDir);
        RunFiles.WriteJsonAtomic(Path.Combine(dir, RunFiles.Checkpoint), new JsonObject
        {
            ["episodes"] = episodes,
            ["agent"] = name,
            ["trajectory_csv"] = trajectory.BaseStream.Position,
            ["trajectory_jsonl"] = trajectoryJson.BaseStream.Position,
            ["episodes_csv"] = episodesCsv.BaseStream.Position,
        });
        foreach (var old in Directory.GetDirectories(dir, "checkpoint-*"))
        {
            if (Path.GetFileName(old) != name)
                Directory.Delete(old, recursive: true);
        }
    }

    private static int CheckpointedEpisodes(string dir) =>
        RunFiles.ReadJson(Path.Combine(dir, RunFiles.Checkpoint))?["episodes"]?.GetValue<int>() ?? 0;

    private static void WriteStatus(string dir, int seed, string status, int episodes, string? error)
    {
        Directory.CreateDirectory(dir);
        var json = new JsonObject { ["status"] = status, ["seed"] = seed, ["episodes"] = episodes, ["updated"] = DateTimeOffset.UtcNow.ToString("O") };
        if (error is not null)
            json["error"] = error;
        RunFiles.WriteJsonAtomic(Path.Combine(dir, RunFiles.Status), json);
    }

    /// <summary>What the experiment is, for the run directory (the report reads it back without the scenario files).</summary>
    internal static JsonObject ExperimentJson(Experiment experiment)
    {
        var json = new JsonObject
        {
            ["name"] = experiment.Name,
            ["description"] = experiment.Description,
            ["question"] = experiment.Question,
            ["file"] = Path.GetFullPath(experiment.File),
            ["seeds"] = new JsonArray(experiment.Seeds.Select(s => (JsonNode)JsonValue.Create(s)).ToArray()),
            ["sweep_keys"] = new JsonArray(experiment.SweepKeys.Select(k => (JsonNode)JsonValue.Create(k)).ToArray()),
            ["configs"] = new JsonArray(experiment.Configs.Select(c => (JsonNode)JsonValue.Create(c.DirectoryName)).ToArray()),
            ["checkpoint_every"] = experiment.CheckpointEvery,
            ["report"] = new JsonObject
            {
                ["violation_threshold"] = experiment.Report.ViolationThreshold,
                ["window"] = experiment.Report.Window,
                ["final_fraction"] = experiment.Report.FinalFraction,
            },
        };
        if (experiment.Anomaly is { } a)
        {
            json["anomaly"] = new JsonObject
            {
                ["model"] = a.Model,
                ["collect_episodes"] = a.CollectEpisodes,
                ["algo"] = a.Algo,
                ["false_alarm_rate"] = a.FalseAlarmRate,
                ["seed"] = a.Seed,
                ["threshold"] = a.Threshold,
                ["record_traces"] = a.RecordTraces,
            };
        }
        return json;
    }

    /// <summary>What a config is, for its directory (the report reads it back).</summary>
    internal static JsonObject ConfigJson(ExperimentConfig config)
    {
        var hyper = new JsonObject();
        foreach (var (key, value) in config.Hyperparameters)
        {
            hyper[key] = value switch
            {
                long l => JsonValue.Create(l),
                double d => JsonValue.Create(d),
                bool b => JsonValue.Create(b),
                _ => JsonValue.Create(value.ToString()),
            };
        }
        var sweep = new JsonObject();
        foreach (var (key, value) in config.SweepValues)
            sweep[key] = value;
        return new JsonObject
        {
            ["label"] = config.Label,
            ["scenario"] = config.Scenario.Name,
            ["scenario_file"] = config.ScenarioPath,
            ["backend"] = config.Backend,
            ["feedback"] = config.Feedback.Word(),
            ["algorithm"] = config.Algorithm,
            ["hyperparameters"] = hyper,
            ["episodes"] = config.Episodes,
            ["sweep"] = sweep,
        };
    }
}
