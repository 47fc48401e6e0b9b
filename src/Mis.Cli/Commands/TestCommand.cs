using System.CommandLine;
using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Mis.Cli.Commands;

/// <summary><c>mis test</c>: builds and runs every test suite, then prints one closing tally.</summary>
public static partial class TestCommand
{
    internal static Command Create()
    {
        var filter = new Option<string?>("--filter") { HelpName = "EXPR", Description = "Run only the tests matching this expression (dotnet test --filter syntax, e.g. FullyQualifiedName~Config)." };
        var command = new Command("test",
            "Build and run every test suite (tests/*), then print 'tests: N passed, N failed, N skipped'. " +
            "Kernel tests need root; they skip with the reason printed, except under CI=true, where a test that cannot run fails " +
            "and any skipped test fails the run.")
        {
            filter,
        };
        command.SetAction(result => Run(result.GetValue(filter)));
        return command;
    }

    private static int Run(string? filter)
    {
        // The ./mis launcher has just built the whole solution in Release; don't build it twice.
        bool noBuild = Environment.GetEnvironmentVariable("MIS_BUILT") == "1";
        string root = RepoRoot.Find();
        var psi = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = root,
            RedirectStandardOutput = true,
            ArgumentList = { "test", Path.Combine(root, "MIS.sln"), "-c", "Release", "--nologo", "--logger", "console;verbosity=normal",
                              // One test assembly at a time: kernel tests attach host-wide programs and must not overlap.
                              "-m:1" },
        };
        if (noBuild)
            psi.ArgumentList.Add("--no-build");
        if (filter is not null)
        {
            psi.ArgumentList.Add("--filter");
            psi.ArgumentList.Add(filter);
        }

        var tally = new Tally();
        using (var dotnet = Process.Start(psi) ?? throw new InvalidOperationException("cannot start dotnet"))
        {
            // Stream the runner's output as it comes and keep the per-assembly summary lines.
            for (string? line; (line = dotnet.StandardOutput.ReadLine()) is not null;)
            {
                Console.WriteLine(line);
                tally.Read(line);
            }
            dotnet.WaitForExit();
            tally.RunnerExitCode = dotnet.ExitCode;
        }

        bool ci = string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);
        if (tally.Assemblies == 0)
            Console.WriteLine("mis test: the test runner reported no test assembly; see the output above.");
        if (ci && tally.Skipped > 0)
            Console.WriteLine($"mis test: CI=true and {tally.Skipped} test(s) skipped: under CI every test must run.");
        // Failures are restated last so that a log cut to its tail (a CI summary) still names them.
        foreach (string line in tally.FailureReports)
            Console.WriteLine(line);
        Console.WriteLine($"tests: {tally.Passed} passed, {tally.Failed} failed, {tally.Skipped} skipped");
        bool ok = tally.RunnerExitCode == 0 && tally.Failed == 0 && tally.Assemblies > 0 && tally.Passed > 0 && !(ci && tally.Skipped > 0);
        return ok ? 0 : 1;
    }

    /// <summary>
    /// Sums VSTest's per-assembly results, in either of its two shapes: the one-line summary
    /// ("Passed!  - Failed: 0, Passed: 12, Skipped: 1, Total: 13, ...") or, at normal verbosity,
    /// a "Total tests: 13" line followed by indented "Passed: 12", "Failed: 0", "Skipped: 1" lines.
    /// It also keeps each failed test's report (its "  Failed NAME" line and the message and stack
    /// trace under it, cut to <see cref="FailureReportLines"/> lines).
    /// </summary>
    public sealed class Tally
    {
        internal int Passed { get; private set; }
        internal int Failed { get; private set; }
        internal int Skipped { get; private set; }
        internal int Assemblies { get; private set; }
        internal int RunnerExitCode { get; set; }

        internal const int FailureReportLines = 30;

        private readonly List<string> _failureReports = [];
        private int _failureLinesLeft;
        private bool _inBlock;

        internal IReadOnlyList<string> FailureReports => _failureReports;

        internal void Read(string line)
        {
            ReadFailureReport(line);
            if (SummaryLine().Match(line) is { Success: true } m)
            {
                Assemblies++;
                Failed += int.Parse(m.Groups["failed"].Value);
                Passed += int.Parse(m.Groups["passed"].Value);
                Skipped += int.Parse(m.Groups["skipped"].Value);
                _inBlock = false;
            }
            else if (TotalLine().IsMatch(line))
            {
                Assemblies++;
                _inBlock = true;
            }
            else if (_inBlock && CountLine().Match(line) is { Success: true } c)
            {
                int n = int.Parse(c.Groups["n"].Value);
                switch (c.Groups["kind"].Value)
                {
                    case "Passed": Passed += n; break;
                    case "Failed": Failed += n; break;
                    default: Skipped += n; break;
                }
            }
            else if (_inBlock && !string.IsNullOrWhiteSpace(line) && !line.StartsWith(' '))
            {
                _inBlock = false;
            }
        }

        private void ReadFailureReport(string line)
        {
            if (FailedTestLine().IsMatch(line))
                _failureLinesLeft = FailureReportLines;
            else if (_failureLinesLeft > 0 && (ResultLine().IsMatch(line) || !line.StartsWith(' ')))
                _failureLinesLeft = 0;
            if (_failureLinesLeft > 0)
            {
                _failureReports.Add(line);
                _failureLinesLeft--;
            }
        }
    }

    [GeneratedRegex(@"^\s{2}Failed \S")]
    private static partial Regex FailedTestLine();

    [GeneratedRegex(@"^\s{2}(Passed|Failed|Skipped) \S")]
    private static partial Regex ResultLine();

    [GeneratedRegex(@"^\s*(Passed|Failed)!\s+-\s+Failed:\s+(?<failed>\d+),\s+Passed:\s+(?<passed>\d+),\s+Skipped:\s+(?<skipped>\d+),")]
    private static partial Regex SummaryLine();

    [GeneratedRegex(@"^Total tests:\s+\d+\s*$")]
    private static partial Regex TotalLine();

    [GeneratedRegex(@"^\s+(?<kind>Passed|Failed|Skipped):\s+(?<n>\d+)\s*$")]
    private static partial Regex CountLine();
}
