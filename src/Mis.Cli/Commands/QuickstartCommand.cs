using System.CommandLine;
using Mis.Enforcer.Configuration;
using Mis.Enforcer.Host;

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
            "Probe this host (as `mis doctor`), then walk the seed's example workload (`cat /etc/shadow` in a loop) " +
            "through the DEFCON ladder of the active configuration: when it is slowed, by how much, and when it is killed.")
        {
            config,
        };
        command.SetAction(result =>
        {
            var loaded = ConfigOption.Load(result.GetValue(config));
            if (loaded is null)
                return 2;

            Console.WriteLine("[1/2] Probing this host (full report: ./mis doctor)...");
            var report = HostProbe.Run();
            foreach (var p in report.Programs)
                Console.WriteLine($"      {p.Kind,-19} {p.Status,-11} {p.Detail}");
            Console.WriteLine($"      backend: {report.Backend.Name}: {report.Backend.Reason}");
            Console.WriteLine();

            Console.WriteLine($"[2/2] The DEFCON ladder ({loaded.Value.Source}), applied to a workload whose every `cat /etc/shadow` is denied:");
            Console.WriteLine(Ladder(loaded.Value.Config.Defcon));
            Console.WriteLine("Next: ./mis doctor --json for machines; config/config.toml for every setting.");
            return 0;
        });
        return command;
    }

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
