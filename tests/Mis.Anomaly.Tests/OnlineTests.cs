using Mis.Anomaly.Models;
using Mis.Anomaly.Corpus;
using Mis.Anomaly.Traces;
using Mis.Enforcer.Events;
using Mis.Testing;

namespace Mis.Anomaly.Tests;

/// <summary>
/// `mis run --learn` with trace files and with live anomaly scoring, end to end on the real kernel:
/// the real binary, a real cgroup, the BPF syscall stream. An attack-like workload is killed with
/// the anomaly event (score and window) logged; a benign one runs to its end.
/// </summary>
public sealed class OnlineTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mis-online-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string EventsFile => Path.Combine(_dir, "events.jsonl");

    private List<EnforcementEvent> Events() => [.. File.ReadAllLines(EventsFile).Select(EnforcementEvent.FromJsonLine)];

    private static void RequireKernel()
    {
        HostRequirements.Root();
        HostRequirements.That(File.Exists("/sys/kernel/btf/vmlinux"), "no kernel BTF");
    }

    /// <summary>STIDE trained on the committed corpus's normal runs (a second to train).</summary>
    private string Model()
    {
        string path = Path.Combine(_dir, "ngram.model");
        using var detector = AnomalyTrainer.Train(TraceReader.Read(Path.Combine(MisCli.Corpus, "normal", "train")), new TrainOptions { Algo = Algorithms.Ngram });
        ModelFile.Save(detector, path);
        return path;
    }

    // Miner-like: a CPU loop that draws randomness as fast as it can, for 20 s unless stopped.
    private const string MinerLoop = "import os,time\nend=time.time()+20\nwhile time.time()<end: os.urandom(16)\n";

    [Fact]
    public void Attack_like_workload_is_killed_with_its_score_and_window_logged()
    {
        RequireKernel();
        var r = MisCli.Run("run", "--learn", "--anomaly-model", Model(), "--events", EventsFile, "--cwd", "/tmp", "--",
            "/usr/bin/python3", "-c", MinerLoop);

        Assert.True(r.ExitCode == 137, r.ToString());
        Assert.Contains("killed by MIS: anomaly score", r.Stderr);
        Assert.Contains("killed on   window [", r.Stderr);
        var events = Events();
        var kill = Assert.Single(events, e => e.Event == "anomaly" && e.Decision == "kill" && e.Reason!.Contains("cgroup killed"));
        Assert.InRange(kill.AnomalyScore!.Value, 801, 1000);
        Assert.Equal(64, kill.WindowSize);
        Assert.Equal(64, kill.Window!.Count);
        Assert.Contains("kill_on_anomaly", kill.Reason);
        Assert.Equal("ngram", kill.Target);
        var exit = events[^1];
        Assert.Equal(("exit", 137), (exit.Event, exit.ExitStatus));
        // Killed long before the loop's own 20 s.
        Assert.True(exit.Timestamp - events[0].Timestamp < TimeSpan.FromSeconds(10), $"took {exit.Timestamp - events[0].Timestamp}");
    }

    [Fact]
    public void Benign_workload_is_scored_but_not_killed()
    {
        RequireKernel();
        var shellLoop = CorpusWorkloads.All.Single(w => w.Name == "shell-loop").Script(new CorpusEnv("/tmp", 0, 0, 0, null, 0));
        var r = MisCli.Run("run", "--learn", "--anomaly-model", Model(), "--events", EventsFile, "--cwd", "/tmp", "--", "/bin/bash", "-c", shellLoop);

        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("anomaly     max ", r.Stderr);
        var scored = Events().Where(e => e.Event == "anomaly").ToList();
        Assert.NotEmpty(scored);
        Assert.All(scored, e =>
        {
            Assert.Equal("", e.Decision);
            Assert.InRange(e.AnomalyScore!.Value, 0, 800);
            Assert.Equal(e.WindowSize, e.Window!.Count);
        });
    }

    [Fact]
    public void With_kill_on_anomaly_false_the_score_is_logged_and_the_workload_lives()
    {
        RequireKernel();
        string config = Path.Combine(_dir, "config.toml");
        File.WriteAllText(config, "[policy]\nkill_on_anomaly = false\n");
        var r = MisCli.Run("run", "--learn", "--config", config, "--anomaly-model", Model(), "--events", EventsFile, "--cwd", "/tmp", "--",
            "/usr/bin/python3", "-c", MinerLoop.Replace("+20", "+2"));

        Assert.True(r.ExitCode == 0, r.ToString());
        var anomalies = Events().Where(e => e.Event == "anomaly").ToList();
        Assert.Contains(anomalies, e => e.AnomalyScore > 800);
        Assert.DoesNotContain(anomalies, e => e.Decision == "kill");
    }

    [Fact]
    public void Learning_mode_writes_one_trace_file_per_thread_that_the_reader_reads()
    {
        RequireKernel();
        string traces = Path.Combine(_dir, "traces");
        var r = MisCli.Run("run", "--learn", "--traces", traces, "--events", EventsFile, "--cwd", "/tmp", "--",
            "/bin/sh", "-c", "cat /etc/hostname; /usr/bin/python3 -c 'import threading; t=threading.Thread(target=print, args=(1,)); t.start(); t.join()'");

        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains($"traces      ", r.Stderr);
        var read = TraceReader.Read(traces);
        var files = read.Select(t => Path.GetFileName(t.Source)).ToList();
        Assert.Contains(files, f => f.EndsWith("-cat.trace", StringComparison.Ordinal));
        Assert.True(files.Count(f => f.EndsWith("-python3.trace", StringComparison.Ordinal)) >= 2, string.Join(' ', files)); // main thread and the started one
        // Every syscall event of the run is in exactly one trace, in order.
        var syscallEvents = Events().Where(e => e.Event == "syscall").GroupBy(e => e.Tid).ToDictionary(g => g.Key, g => g.Select(e => e.SyscallNr!.Value).ToArray());
        foreach (var t in read)
        {
            int tid = int.Parse(Path.GetFileName(t.Source).Split('-')[0]);
            Assert.Equal(syscallEvents[tid], t.Syscalls);
        }
        Assert.Equal(syscallEvents.Count, read.Count);
    }

    [Fact]
    public void Traces_and_anomaly_scoring_need_learning_mode()
    {
        HostRequirements.Root(); // mis run refuses to start at all without root
        var r = MisCli.Run("run", "--traces", Path.Combine(_dir, "t"), "--", "true");
        Assert.Equal(125, r.ExitCode);
        Assert.Contains("need --learn", r.Stderr);
    }
}
