using System.CommandLine;
using System.Runtime.InteropServices;
using Mis.Anomaly;
using Mis.Anomaly.Traces;
using Mis.Enforcer.Configuration;
using Mis.Gym.Envs;
using Mis.Gym.Scenarios;
using Mis.Gym.Experiments;
using Mis.Gym.Reports;
using Mis.Cli.Terminal;

namespace Mis.Cli.Commands;

/// <summary><c>mis report RUN_DIR</c>: rebuilds an experiment's report from its run directory's files.</summary>
public static class ReportCommand
{
    /// <summary>Exit status when runs of the experiment are not complete (the report covers what is there).</summary>
    internal const int Incomplete = 3;

    internal static Command Create()
    {
        var dir = new Argument<DirectoryInfo>("RUN_DIR") { Description = "A run directory made by `mis gym run` (e.g. runs/feedback-modes)." };
        var command = new Command("report",
            "Rebuild an experiment's report (summary.json, report.md, self-contained report.html, figures/*.png) from the " +
            "trajectory and episode files of its run directory. This also merges a sharded sweep (mis gym run --shard I/N): it " +
            "reports whatever is there and names the runs that are not complete (not started, partial, failed) and their shards. " +
            "For a complete sweep summary.json is byte for byte what a one-machine run writes (on the simulator). Exit status 0 " +
            "when every run is complete, 2 when the directory is not a run directory, 3 when runs are missing (the report covers " +
            "what is there).")
        {
            dir,
        };
        command.SetAction(result =>
        {
            var path = result.GetValue(dir)!.FullName;
            try
            {
                var analysis = RunAnalysis.Load(path);
                var files = ReportWriter.Build(analysis);
                Console.WriteLine($"mis report: {files.Figures.Count} figures, {files.Markdown}");
                if (!analysis.IsComplete)
                {
                    Console.WriteLine($"mis report: incomplete: {analysis.Incomplete.Count} of {analysis.RunCount} runs are not complete; the report covers what is there:");
                    foreach (var line in ReportWriter.IncompleteLines(analysis))
                        Console.WriteLine($"  {line}");
                }
                Console.WriteLine($"report: {files.Html}");
                return analysis.IsComplete ? 0 : Incomplete;
            }
            catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"mis report: {e.Message}");
                return 2;
            }
        });
        return command;
    }
}

/// <summary>Runs an experiment from the command line: the progress bar, Ctrl+C, the report at the end.</summary>
public static class ExperimentConsole
{
    /// <summary>Exit status when some (config, seed) runs failed (the others completed).</summary>
    internal const int SomeRunsFailed = 1;

    /// <summary>Exit status for an unusable experiment file or backend.</summary>
    internal const int BadInput = 2;

    /// <summary>Exit status after Ctrl+C (as a shell reports SIGINT); rerun to resume.</summary>
    internal const int Interrupted = 130;

    // What an experiment's [anomaly] trains and loads: Mis.Anomaly's models (the experiments never load them themselves).
    private static readonly AnomalyModels ExperimentAnomalyModels = new(
        Train: t => RunTraces.Train(t.TracesRoot, t.ModelPath, new TrainOptions { Algo = t.Algo, Seed = t.Seed, FalseAlarmRate = t.FalseAlarmRate }),
        Load: ModelFile.Load);

    /// <summary>Loads the experiment file, or prints the error (file:line:col key) and returns null.</summary>
    internal static Experiment? Load(string command, string file)
    {
        try
        {
            return ExperimentFile.Load(file);
        }
        catch (ConfigException e)
        {
            Console.Error.WriteLine($"{command}: {e.Message}");
            return null;
        }
    }

    /// <summary>
    /// Runs <paramref name="experiment"/> (or the share of it <paramref name="shard"/> names) into
    /// <paramref name="outDir"/> and builds the report; the exit status. A shard of several builds no
    /// report (other shards may still be running): it says how to merge.
    /// </summary>
    internal static int Run(string command, Experiment experiment, string outDir, TextWriter log, ShardChoice? shard = null)
    {
        var part = shard?.Shard ?? Shard.Whole;
        var runs = part.Select(experiment.Runs).ToList();
        foreach (var backend in runs.Select(r => r.Config.Backend).Distinct())
        {
            // An unavailable backend is one clear message, not every run recorded as failed.
            try
            {
                // With [anomaly], a learning-mode env that records (the daemon's backend cannot).
                var first = experiment.Configs.First(c => c.Backend == backend);
                var feedback = first.Feedback == FeedbackMode.AnomalyKill || experiment.Anomaly is not null ? FeedbackMode.None : first.Feedback;
                MisGym.Make(first.Scenario, backend, feedback, experiment.Anomaly is null ? null : new SyscallWatch { RecordTraces = true }).Dispose();
            }
            catch (BackendUnavailableException e)
            {
                Console.Error.WriteLine($"{command}: backend {backend}: {e.Message}");
                return BadInput;
            }
        }
        var runner = new ExperimentRunner(experiment, outDir) { Shard = part, AnomalyModels = experiment.Anomaly is null ? null : ExperimentAnomalyModels };
        IReadOnlyList<RunOutcome> outcomes;
        long episodes = runs.Sum(r => (long)r.Config.Episodes);
        if (shard is not null && !part.IsWhole)
            log.WriteLine($"{command}: shard {part} (from {shard.Source}): {runs.Count} of the {experiment.Runs.Count} (config, seed) runs" +
                          (runs.Count == 0 ? "" : $" (numbers {string.Join(", ", Enumerable.Range(0, experiment.Runs.Count).Where(part.Owns).Take(4))}" +
                                                  $"{(runs.Count > 4 ? ", …" : "")} in experiment order)"));
        log.WriteLine($"{command}: {experiment.Name}: {experiment.Configs.Count} config(s) × {experiment.Seeds.Count} seed(s), " +
                      $"{episodes:N0} episodes on {string.Join(", ", runs.Select(r => r.Config.Backend).Distinct())}, into {runner.OutDirectory}");
        using var interrupt = new CancellationTokenSource();
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, ctx => { ctx.Cancel = true; interrupt.Cancel(); });
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; interrupt.Cancel(); });
        using var progress = ReferenceEquals(log, Console.Out) ? ConsoleProgress.OnStandardOutput(command, "ep") : new ConsoleProgress(command, log, live: false, "ep");
        progress.Stage("episodes", episodes);
        try
        {
            outcomes = runner.Run(p => progress.Report(p.Done, p.Total, p.Current), interrupt.Token);
            progress.Done();
        }
        catch (OperationCanceledException)
        {
            progress.Done();
            log.WriteLine($"{command}: interrupted; finished episodes are kept (checkpointed). Rerun the same command to resume.");
            return Interrupted;
        }
        catch (InvalidOperationException e)
        {
            progress.Done();
            Console.Error.WriteLine($"{command}: {e.Message}");
            return BadInput;
        }
        var failed = outcomes.Where(o => o.Status == RunStatus.Failed).ToList();
        foreach (var f in failed)
            Console.Error.WriteLine($"{command}: {f.Config.Label} / seed {f.Seed} failed: {f.Error} (the others went on; rerun to retry it)");
        int skipped = outcomes.Count(o => o.Status == RunStatus.Skipped);
        if (skipped > 0)
            log.WriteLine($"{command}: {skipped} run(s) were already complete in {runner.OutDirectory}");
        if (!part.IsWhole)
        {
            // Another shard may still be running: a report now would be over part of the sweep.
            log.WriteLine($"{command}: shard {part} done: {outcomes.Count - failed.Count} of its {outcomes.Count} run(s) complete" +
                          (failed.Count > 0 ? $", {failed.Count} failed (rerun with the same --shard to retry)" : ""));
            log.WriteLine($"merge: when every shard has finished, mis report {runner.OutDirectory}");
            return failed.Count > 0 ? SomeRunsFailed : 0;
        }
        var analysis = RunAnalysis.Load(runner.OutDirectory);
        var files = ReportWriter.Build(analysis);
        foreach (var line in ReportWriter.Answer(analysis))
            log.WriteLine("  " + line.Replace("**", "", StringComparison.Ordinal));
        log.WriteLine($"tensorboard: tensorboard --logdir {runner.OutDirectory}");
        log.WriteLine($"report: {files.Html}");
        return failed.Count > 0 ? SomeRunsFailed : 0;
    }
}
