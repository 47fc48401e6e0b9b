using System.CommandLine;
using Mis.Enforcer.Configuration;
using Mis.Enforcer.Defcon;
using Mis.Enforcer.Host;
using Mis.Enforcer.Run;
using Mis.Gym.Envs;

namespace Mis.Cli.Commands;

/// <summary>
/// <c>mis quickstart</c>: the first thing to run on a new machine. Probes the host, then shows the
/// DEFCON ladder the enforcer applies under the active configuration, runs the seed's example
/// workload, and ends with a short experiment (<c>experiments/quickstart.toml</c>) whose report
/// path it prints last.
/// </summary>
public static class QuickstartCommand
{
    internal static Command Create()
    {
        var config = ConfigOption.Create();
        var outDir = new Option<DirectoryInfo?>("--out") { HelpName = "DIR", Description = "Run directory of the short experiment (default: runs/quickstart; a previous quickstart run there is replaced)." };
        var command = new Command("quickstart",
            "Probe this host (as `mis doctor`), show the DEFCON ladder of the active configuration, run the seed's " +
            "example workload (`cat /etc/shadow` 20 times) under the real kernel enforcer and compare what happened with the ladder, " +
            "then run a short experiment (experiments/quickstart.toml: on the kernel backend where the host allows it, else the " +
            "simulator) and print the path of its report.")
        {
            config, outDir,
        };
        command.SetAction(result =>
        {
            var loaded = ConfigOption.Load(result.GetValue(config));
            if (loaded is null)
                return 2;

            Console.WriteLine("[1/4] Probing this host (full report: ./mis doctor)...");
            var report = HostProbe.Run();
            foreach (var p in report.Programs)
                Console.WriteLine($"      {p.Kind,-19} {p.Status,-11} {p.Detail}");
            Console.WriteLine($"      backend: {report.Backend.Name}: {report.Backend.Reason}");
            Console.WriteLine();

            var defcon = loaded.Value.Config.Defcon;
            Console.WriteLine($"[2/4] The DEFCON ladder ({loaded.Value.Source}) for a workload whose every `cat /etc/shadow` is denied:");
            Console.WriteLine(Ladder(defcon));

            Console.WriteLine($"[3/4] Running it for real: mis run -- sh -c '{SeedExample}'");
            bool kernel = report.Backend.Name == "kernel";
            if (!kernel)
            {
                Console.WriteLine($"      skipped: {report.Backend.Reason}");
                Console.WriteLine();
                return Experiment(MisGym.Sim, $"the simulator, because {report.Backend.Reason}", result.GetValue(outDir)?.FullName);
            }
            var run = WorkloadRunner.Run(new RunRequest { Command = ["sh", "-c", SeedExample], Config = loaded.Value.Config });
            foreach (var t in run.Transitions)
                Console.WriteLine($"      violation {t.Violations,2}: DEFCON {t.From} -> {t.To}");
            Console.WriteLine($"      {(run.KilledByMis ? "killed by MIS" : "ended")} with exit status {run.ExitStatus} after {run.Violations} violations; " +
                              $"{run.Slowdown.TotalMilliseconds:0.#} ms of slowdown over {run.Syscalls:N0} syscalls");
            var ladder = defcon.Ladder;
            bool asConfigured = run.Transitions.All(t => ladder.LevelFor(t.Violations) == t.To);
            Console.WriteLine($"      the kernel followed the configured ladder: {(asConfigured ? "yes" : "NO")}");
            Console.WriteLine();
            int experiment = Experiment(MisGym.Kernel, "the kernel backend (real cgroups, BPF and seccomp)", result.GetValue(outDir)?.FullName);
            return asConfigured ? experiment : 1;
        });
        return command;
    }

    // [4/4]: the short experiment; its report path is the last line printed.
    private static int Experiment(string backend, string why, string? outDir)
    {
        string file = Path.Combine(RepoRoot.Find(), "experiments", "quickstart.toml");
        Console.WriteLine($"[4/4] A short experiment ({Path.GetRelativePath(Environment.CurrentDirectory, file)}) on {why}:");
        var experiment = ExperimentConsole.Load("mis quickstart", file);
        if (experiment is null)
            return ExperimentConsole.BadInput;
        // Its scenario has a ladder of its own, not the one shown in [2/4]: say which.
        var scenario = experiment.Configs[0].Scenario;
        Console.WriteLine($"      scenario {scenario.Name}: DEFCON 4, 3, 2, 1 at {string.Join(", ", scenario.Defcon.Thresholds)} violations; " +
                          $"configurations {string.Join(" and ", experiment.Configs.Select(c => c.Label))}, {experiment.Seeds.Count} seeds × {experiment.Configs[0].Episodes} episodes");
        string dir = outDir ?? Path.GetFullPath(Path.Combine("runs", "quickstart"));
        // A fresh run each time (the runner would otherwise resume the finished one), but only
        // over a previous quickstart run: never delete a directory MIS did not make.
        var previous = Mis.Gym.Experiments.RunFiles.ReadJson(Path.Combine(dir, Mis.Gym.Experiments.RunFiles.ExperimentJson));
        if (previous?["name"]?.GetValue<string>() == experiment.Name)
            Directory.Delete(dir, recursive: true);
        Console.WriteLine("Next: ./mis gym run experiments/feedback-modes.toml for the flagship experiment; ./mis run -- CMD for your own workload; README lists every command.");
        return ExperimentConsole.Run("mis quickstart", experiment.WithBackend(backend), dir, Console.Out);
    }

    /// <summary>The seed's example workload: reads a credential file until MIS kills it.</summary>
    internal const string SeedExample = "for i in $(seq 20); do cat /etc/shadow 2>/dev/null; done";

    /// <summary>The violations at which the level changes, with what each level does.</summary>
    internal static string Ladder(DefconConfig defcon)
    {
        var w = new StringWriter();
        var ladder = defcon.Ladder;
        var level = ladder.LevelFor(0);
        w.WriteLine($"      violation  0: DEFCON {level}, no slowdown");
        for (ulong violations = 1; level != DefconLevel.Severest; violations++)
        {
            var next = ladder.LevelFor(violations);
            if (next == level)
                continue;
            string effect = next == DefconLevel.Severest
                ? (defcon.KillAtLevel1 ? "the whole cgroup is killed (exit status 137)" : "kill disabled by config (kill_at_level_1 = false)")
                : $"every syscall of the cgroup slowed by {ladder.SlowdownNsFor(next) / 1_000_000.0:0.###} ms";
            w.WriteLine($"      violation {violations,2}: DEFCON {level} -> {next}, {effect}");
            level = next;
        }
        return w.ToString();
    }
}
