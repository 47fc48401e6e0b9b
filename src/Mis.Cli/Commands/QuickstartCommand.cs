using System.CommandLine;
using Mis.Enforcer.Configuration;
using Mis.Enforcer.Host;
using Mis.Enforcer.Run;

namespace Mis.Cli.Commands;

/// <summary>
/// <c>mis quickstart</c>: the first thing to run on a new machine. Probes the host, then shows the
/// DEFCON ladder the enforcer applies under the active configuration.
/// </summary>
internal static class QuickstartCommand
{
    internal static Command Create()
    {
        var config = ConfigOption.Create();
        var command = new Command("quickstart",
            "Probe this host (as `mis doctor`), show the DEFCON ladder of the active configuration, then run the seed's " +
            "example workload (`cat /etc/shadow` 20 times) under the real kernel enforcer and compare what happened with the ladder.")
        {
            config,
        };
        command.SetAction(result =>
        {
            var loaded = ConfigOption.Load(result.GetValue(config));
            if (loaded is null)
                return 2;

            Console.WriteLine("[1/3] Probing this host (full report: ./mis doctor)...");
            var report = HostProbe.Run();
            foreach (var p in report.Programs)
                Console.WriteLine($"      {p.Kind,-19} {p.Status,-11} {p.Detail}");
            Console.WriteLine($"      backend: {report.Backend.Name}: {report.Backend.Reason}");
            Console.WriteLine();

            var defcon = loaded.Value.Config.Defcon;
            Console.WriteLine($"[2/3] The DEFCON ladder ({loaded.Value.Source}) for a workload whose every `cat /etc/shadow` is denied:");
            Console.WriteLine(Ladder(defcon));

            Console.WriteLine($"[3/3] Running it for real: mis run -- sh -c '{SeedExample}'");
            if (report.Backend.Name != "kernel")
            {
                Console.WriteLine($"      skipped: {report.Backend.Reason}");
                return 0;
            }
            var run = WorkloadRunner.Run(new RunRequest { Command = ["sh", "-c", SeedExample], Config = loaded.Value.Config });
            foreach (var t in run.Transitions)
                Console.WriteLine($"      violation {t.Violations,2}: DEFCON {t.From} -> {t.To}");
            Console.WriteLine($"      {(run.KilledByMis ? "killed by MIS" : "ended")} with exit status {run.ExitStatus} after {run.Violations} violations; " +
                              $"{run.Slowdown.TotalMilliseconds:0.#} ms of slowdown over {run.Syscalls:N0} syscalls");
            bool asConfigured = run.Transitions.All(t => defcon.LevelFor((long)t.Violations) == t.To);
            Console.WriteLine($"      the kernel followed the configured ladder: {(asConfigured ? "yes" : "NO")}");
            Console.WriteLine();
            Console.WriteLine("Next: ./mis run --events events.jsonl -- CMD to run your own workload; README lists every command.");
            return asConfigured ? 0 : 1;
        });
        return command;
    }

    /// <summary>The seed's example workload: reads a credential file until MIS kills it.</summary>
    internal const string SeedExample = "for i in $(seq 20); do cat /etc/shadow 2>/dev/null; done";

    /// <summary>The violations at which the level changes, with what each level does.</summary>
    internal static string Ladder(DefconConfig defcon)
    {
        var w = new StringWriter();
        int level = defcon.LevelFor(0);
        w.WriteLine($"      violation  0: DEFCON {level}, no slowdown");
        for (long violations = 1; level > 1; violations++)
        {
            int next = defcon.LevelFor(violations);
            if (next == level)
                continue;
            string effect = next == 1
                ? (defcon.KillAtLevel1 ? "the whole cgroup is killed (exit status 137)" : "kill disabled by config (kill_at_level_1 = false)")
                : $"every syscall of the cgroup slowed by {defcon.SlowdownUsFor(next) / 1000.0:0.###} ms";
            w.WriteLine($"      violation {violations,2}: DEFCON {level} -> {next}, {effect}");
            level = next;
        }
        return w.ToString();
    }
}
