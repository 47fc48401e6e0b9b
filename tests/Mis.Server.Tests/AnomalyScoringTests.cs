using System.Diagnostics;
using Grpc.Core;
using Mis.Anomaly;
using Mis.Anomaly.Corpus;
using Mis.Anomaly.Models;
using Mis.Anomaly.Traces;
using Mis.Enforcer.Configuration;
using Mis.Enforcer.Events;
using Mis.Policy.V1;
using Mis.Server.Hosting;
using Mis.Testing;

namespace Mis.Server.Tests;

/// <summary>An n-gram (STIDE) model trained once on the committed corpus's normal runs (about a second).</summary>
public sealed class AnomalyModelFixture : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mis-server-model-").FullName;

    public AnomalyModelFixture()
    {
        Path = System.IO.Path.Combine(_dir, "ngram.model");
        using var detector = AnomalyTrainer.Train(TraceReader.Read(System.IO.Path.Combine(RepoRoot, "experiments", "anomaly", "corpus", "normal", "train")),
            new TrainOptions { Algo = Algorithms.Ngram });
        ModelFile.Save(detector, Path);
    }

    /// <summary>The model file.</summary>
    internal string Path { get; }

    internal static string RepoRoot
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
                if (File.Exists(System.IO.Path.Combine(dir.FullName, "global.json")))
                    return dir.FullName;
            throw new InvalidOperationException($"no global.json above {AppContext.BaseDirectory}");
        }
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}

/// <summary>
/// `mis enforcer` scoring its workloads online ([policy] anomaly_model), on the real kernel with a
/// real model: the learning-mode syscall stream of each monitored workload is scored, the score shows
/// in GetCgroup, ListCgroups, the events and the metrics, and an attack-like workload in learning
/// mode is killed for it (kill reason "anomaly") unless kill_on_anomaly is off.
/// </summary>
public sealed class AnomalyScoringTests(AnomalyModelFixture model) : IClassFixture<AnomalyModelFixture>
{
    // Miner-like: a CPU loop that draws randomness as fast as it can, for 20 s unless stopped.
    private const string MinerLoop = "import os,time\nend=time.time()+20\nwhile time.time()<end: os.urandom(16)\n";

    private static string ShellLoop => CorpusWorkloads.All.Single(w => w.Name == "shell-loop").Script(new CorpusEnv("/tmp", 0, 0, 0, null, 0));

    private Task<TestEnforcer> StartAsync(bool killOnAnomaly = true, string eventsPath = "") =>
        TestEnforcer.StartAsync(c => c with
        {
            Policy = c.Policy with { AnomalyModel = model.Path, KillOnAnomaly = killOnAnomaly },
            Logging = c.Logging with { EventsPath = eventsPath },
        }, anomalyModelLoader: ModelFile.Load);

    private static RunWorkloadRequest Request(bool learning, bool? monitoring, params string[] argv)
    {
        var request = new RunWorkloadRequest { Command = argv[0], Learning = learning, WorkingDirectory = "/tmp" };
        request.Args.AddRange(argv.Skip(1));
        if (monitoring is bool on)
            request.AnomalyMonitoring = on ? AnomalyMonitoring.On : AnomalyMonitoring.Off;
        return request;
    }

    private static async Task<CgroupInfo> GetAsync(TestEnforcer mis, ulong cgroupId) =>
        await mis.Client.GetCgroupAsync(new GetCgroupRequest { CgroupId = cgroupId }, cancellationToken: Ct);

    // The cgroup's events of the watched kinds, up to and including its exit event.
    private static async Task<List<Event>> EventsUntilExitAsync(AsyncServerStreamingCall<Event> watch, ulong cgroupId)
    {
        var events = new List<Event>();
        await foreach (var e in watch.ResponseStream.ReadAllAsync(Ct))
        {
            if (e.CgroupId != cgroupId)
                continue;
            events.Add(e);
            if (e.Event_ == "exit")
                break;
        }
        return events;
    }

    [Fact]
    public async Task A_benign_workload_under_monitoring_scores_low_and_its_live_score_shows_in_GetCgroup_ListCgroups_and_metrics()
    {
        await using var mis = await StartAsync();
        // The corpus's shell loop, then a sleep that keeps the workload running while it is looked at.
        var started = await mis.Client.RunWorkloadAsync(Request(true, null, "/bin/bash", "-c", ShellLoop + "; sleep 30"), cancellationToken: Ct);

        var watch = Stopwatch.StartNew();
        var info = await GetAsync(mis, started.CgroupId);
        while (!(info.AnomalyWindows > 0 && SleepRuns(started.CgroupPath)))
        {
            Assert.True(info.State == WorkloadState.Running, $"the workload ended: exit {info.ExitStatus}, kill reason '{info.KillReason}'");
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"no window scored while running: {info}");
            await Task.Delay(20, Ct);
            info = await GetAsync(mis, started.CgroupId);
        }

        Assert.True(info.AnomalyMonitoring);
        Assert.Equal("ngram", info.AnomalyModel);
        Assert.InRange(info.AnomalyScore, 0u, 800u);
        Assert.InRange(info.AnomalyLastScore, 0u, info.AnomalyScore);
        Assert.False(info.Killed);
        // The peak can still rise while the last windows (sleep's start) are scored: each view
        // must show a score between the one read before it and the one read after it.
        var listed = (await mis.Client.ListCgroupsAsync(new ListCgroupsRequest(), cancellationToken: Ct)).Cgroups.Single(c => c.CgroupId == started.CgroupId);
        string metrics;
        using (var http = new HttpClient())
            metrics = await http.GetStringAsync(mis.Host.MetricsUrl, Ct);
        var after = await GetAsync(mis, started.CgroupId);
        Assert.True(listed.AnomalyMonitoring);
        Assert.InRange(listed.AnomalyScore, info.AnomalyScore, after.AnomalyScore);
        var line = System.Text.RegularExpressions.Regex.Match(metrics, $"mis_cgroup_anomaly_score\\{{cgroup_id=\"{started.CgroupId}\",command=\"bash\"\\}} (\\d+)\n");
        Assert.True(line.Success, metrics);
        Assert.InRange(uint.Parse(line.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), listed.AnomalyScore, after.AnomalyScore);
        Assert.Contains("# TYPE mis_anomaly_score_max gauge\n", metrics);
        info = after;

        await mis.Client.KillProcessAsync(new KillProcessRequest { CgroupId = started.CgroupId }, cancellationToken: Ct);
        var end = await GetAsync(mis, started.CgroupId);
        Assert.Equal("KillProcess", end.KillReason);
        Assert.InRange(end.AnomalyScore, info.AnomalyScore, 800u);
        Assert.True(end.AnomalyWindows >= info.AnomalyWindows);
        var stats = await mis.Client.GetStatsAsync(new GetStatsRequest(), cancellationToken: Ct);
        Assert.Equal((0UL, end.AnomalyWindows), (stats.AnomalyKills, stats.AnomalyWindows));
    }

    private static bool SleepRuns(string cgroupPath)
    {
        try
        {
            return File.ReadAllLines(Path.Combine(cgroupPath, "cgroup.procs")).Any(pid => TestEnforcer.ReadComm(int.Parse(pid)) == "sleep");
        }
        catch (IOException)
        {
            return false;
        }
    }

    [Fact]
    public async Task An_attack_like_workload_in_learning_mode_is_killed_for_its_score_with_reason_anomaly()
    {
        string dir = Directory.CreateTempSubdirectory("mis-server-anomaly-").FullName;
        try
        {
            string eventsPath = Path.Combine(dir, "events.jsonl");
            await using var mis = await StartAsync(eventsPath: eventsPath);
            using var watch = mis.Client.WatchEvents(new WatchEventsRequest { Kinds = { "anomaly", "exit" } }, cancellationToken: Ct);
            await watch.ResponseHeadersAsync;

            var started = await mis.Client.RunWorkloadAsync(Request(true, null, "/usr/bin/python3", "-c", MinerLoop), cancellationToken: Ct);
            var events = await EventsUntilExitAsync(watch, started.CgroupId);
            var info = await mis.WaitExitedAsync(started.CgroupId);

            // The loop would have ended by itself with status 0: the kill is the score's.
            Assert.Equal((true, "anomaly", 137), (info.Killed, info.KillReason, info.ExitStatus));
            Assert.InRange(info.AnomalyScore, 801u, 1000u);
            // The kill's own event; the thread's summary at the end may name the same window.
            var kill = Assert.Single(events, e => e.Event_ == "anomaly" && e.Decision == "kill" && e.Reason.Contains("cgroup killed", StringComparison.Ordinal));
            Assert.InRange(kill.AnomalyScore, 801u, 1000u);
            Assert.True(kill.AnomalyScore <= info.AnomalyScore);
            Assert.Equal(("ngram", "anomaly"), (kill.Target, kill.Operation));
            Assert.True(kill.AnomalyRaw > 0, $"raw {kill.AnomalyRaw}");
            Assert.Equal(64, kill.WindowSize);
            Assert.Equal(64, kill.Window.Count);
            Assert.Contains("kill_on_anomaly", kill.Reason);
            Assert.Contains($"anomaly score {kill.AnomalyScore} > anomaly_threshold 800", kill.Reason);
            var exit = events[^1];
            Assert.Equal(("exit", "anomaly", 137), (exit.Event_, exit.Reason, exit.ExitStatus));

            var stats = await mis.Client.GetStatsAsync(new GetStatsRequest(), cancellationToken: Ct);
            Assert.Equal((1UL, 1UL), (stats.AnomalyKills, stats.ProcessesKilled));
            using (var http = new HttpClient())
                Assert.Contains("mis_anomaly_kills_total 1\n", await http.GetStringAsync(mis.Host.MetricsUrl, Ct));

            // The event log holds the same kill line, with the raw score and the window.
            var logged = File.ReadLines(eventsPath).Select(EnforcementEvent.FromJsonLine)
                .Single(e => e.Event == "anomaly" && e.Decision == "kill" && e.CgroupId == started.CgroupId && e.Reason!.Contains("cgroup killed", StringComparison.Ordinal));
            Assert.Equal((kill.AnomalyScore, kill.AnomalyRaw), ((uint)logged.AnomalyScore!.Value, logged.AnomalyRaw!.Value));
            Assert.Equal(kill.Window, logged.Window!);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task With_kill_on_anomaly_off_an_attack_like_workload_scores_high_is_reported_and_lives()
    {
        await using var mis = await StartAsync(killOnAnomaly: false);
        using var watch = mis.Client.WatchEvents(new WatchEventsRequest { Kinds = { "anomaly", "exit" } }, cancellationToken: Ct);
        await watch.ResponseHeadersAsync;

        var started = await mis.Client.RunWorkloadAsync(Request(true, null, "/usr/bin/python3", "-c", MinerLoop.Replace("+20", "+2", StringComparison.Ordinal)),
            cancellationToken: Ct);
        var events = await EventsUntilExitAsync(watch, started.CgroupId);
        var info = await mis.WaitExitedAsync(started.CgroupId);

        Assert.Equal((false, "", 0), (info.Killed, info.KillReason, info.ExitStatus));
        Assert.InRange(info.AnomalyScore, 801u, 1000u);
        var anomalies = events.Where(e => e.Event_ == "anomaly").ToList();
        Assert.DoesNotContain(anomalies, e => e.Decision == "kill");
        // Reported as it crossed, while the workload ran, not only in the summary at its end.
        Assert.Contains(anomalies, e => e.AnomalyScore > 800 && e.Reason.Contains("not killed (kill_on_anomaly = false)", StringComparison.Ordinal));
        Assert.Equal(0UL, (await mis.Client.GetStatsAsync(new GetStatsRequest(), cancellationToken: Ct)).AnomalyKills);
    }

    [Fact]
    public async Task Outside_learning_mode_nothing_is_scored_and_monitoring_is_chosen_per_workload()
    {
        await using var mis = await StartAsync();
        var miner = MinerLoop.Replace("+20", "+1", StringComparison.Ordinal);

        // No learning mode: the kernel reports no syscall one by one, so nothing is scored or killed.
        var enforcing = await mis.Client.RunWorkloadAsync(Request(false, null, "/usr/bin/python3", "-c", miner), cancellationToken: Ct);
        var info = await mis.WaitExitedAsync(enforcing.CgroupId);
        Assert.Equal((true, 0UL, 0u, false, 0), (info.AnomalyMonitoring, info.AnomalyWindows, info.AnomalyScore, info.Killed, info.ExitStatus));

        // Monitoring off for one workload: learning mode alone kills nothing by score.
        var unmonitored = await mis.Client.RunWorkloadAsync(Request(true, false, "/usr/bin/python3", "-c", miner), cancellationToken: Ct);
        info = await mis.WaitExitedAsync(unmonitored.CgroupId);
        Assert.Equal((false, 0UL, 0u, "", false, 0), (info.AnomalyMonitoring, info.AnomalyWindows, info.AnomalyScore, info.AnomalyModel, info.Killed, info.ExitStatus));
    }

    [Fact]
    public async Task Learning_mode_turned_on_later_starts_the_scoring_and_the_kill()
    {
        await using var mis = await StartAsync();
        var started = await mis.Client.RunWorkloadAsync(Request(false, null, "/usr/bin/python3", "-c", MinerLoop), cancellationToken: Ct);
        await TestEnforcer.WaitCommAsync(started.Pid, "python3");
        Assert.Equal(0UL, (await GetAsync(mis, started.CgroupId)).AnomalyWindows);

        await mis.Client.SetLearningModeAsync(new SetLearningModeRequest { CgroupId = started.CgroupId, Enabled = true }, cancellationToken: Ct);
        var info = await mis.WaitExitedAsync(started.CgroupId);

        Assert.Equal((true, "anomaly", 137), (info.Killed, info.KillReason, info.ExitStatus));
        Assert.InRange(info.AnomalyScore, 801u, 1000u);
    }

    [Fact]
    public async Task Monitoring_on_an_enforcer_without_a_model_is_refused_an_unknown_value_is_invalid_and_the_default_is_off()
    {
        await using var mis = await TestEnforcer.StartAsync();

        var e = await TestEnforcer.FailsAsync(StatusCode.FailedPrecondition,
            () => mis.Client.RunWorkloadAsync(Request(true, true, "true"), cancellationToken: Ct).ResponseAsync);
        Assert.Contains("[policy] anomaly_model", e.Status.Detail);
        var unknown = Request(true, null, "true");
        unknown.AnomalyMonitoring = (AnomalyMonitoring)7;
        e = await TestEnforcer.FailsAsync(StatusCode.InvalidArgument, () => mis.Client.RunWorkloadAsync(unknown, cancellationToken: Ct).ResponseAsync);
        Assert.Contains("anomaly_monitoring 7 is unknown", e.Status.Detail);

        var started = await mis.Client.RunWorkloadAsync(Request(true, null, "true"), cancellationToken: Ct);
        var info = await mis.WaitExitedAsync(started.CgroupId);
        Assert.Equal((false, 0u, ""), (info.AnomalyMonitoring, info.AnomalyScore, info.AnomalyModel));
    }

    [Fact]
    public async Task A_missing_or_invalid_model_stops_the_start_as_a_configuration_error_naming_the_key()
    {
        HostRequirements.Root();
        string dir = Directory.CreateTempSubdirectory("mis-server-badmodel-").FullName;
        try
        {
            string missing = Path.Combine(dir, "missing.model");
            var e = await Assert.ThrowsAsync<EnforcerStartException>(() => TestEnforcer.StartAsync(
                c => c with { Policy = c.Policy with { AnomalyModel = missing } }, anomalyModelLoader: ModelFile.Load));
            Assert.True(e.IsConfiguration);
            Assert.Contains($"policy.anomaly_model: cannot load the anomaly model \"{missing}\"", e.Message);
            Assert.Contains("no such model file", e.Message);

            string garbage = Path.Combine(dir, "garbage.model");
            File.WriteAllText(garbage, "not a model\n");
            e = await Assert.ThrowsAsync<EnforcerStartException>(() => TestEnforcer.StartAsync(
                c => c with { Policy = c.Policy with { AnomalyModel = garbage } }, anomalyModelLoader: ModelFile.Load));
            Assert.True(e.IsConfiguration);
            Assert.Contains("policy.anomaly_model", e.Message);
            Assert.Contains("not a MIS anomaly model", e.Message);

            // A host started without a loader cannot honour the key: refused the same way.
            e = await Assert.ThrowsAsync<EnforcerStartException>(() => TestEnforcer.StartAsync(
                c => c with { Policy = c.Policy with { AnomalyModel = model.Path } }));
            Assert.Contains("policy.anomaly_model", e.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
