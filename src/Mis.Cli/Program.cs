using System.CommandLine;
using Mis.Cli.Commands;

namespace Mis.Cli;

/// <summary>Entry point of the <c>mis</c> command line (run it as <c>./mis</c> from the repository).</summary>
public static class Program
{
    private static int Main(string[] args)
    {
        var root = new RootCommand(
            "MIS (Modular Intelligence Spaces): agent workloads under real kernel enforcement, " +
            "with DEFCON feedback turned into reinforcement-learning rewards.")
        {
            QuickstartCommand.Create(),
            DoctorCommand.Create(),
            RunCommand.Create(),
            EnforcerCommand.Create(),
            ConfigCommand.Create(),
            TestCommand.Create(),
            AnomalyCommand.Create(),
            GymCommand.Create(),
            ReportCommand.Create(),
            BenchCommand.Create(),
        };
        return root.Parse(args).Invoke();
    }
}
