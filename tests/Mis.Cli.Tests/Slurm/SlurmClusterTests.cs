using System.Diagnostics;
using Mis.Testing;

namespace Mis.Cli.Tests.Slurm;

/// <summary>
/// A real single-node Slurm cluster (<see cref="SlurmCluster"/>): jobs submitted by an unprivileged
/// user run as that user. Needs root (the daemons) and Debian's slurm-wlm and munge (./mis installs
/// them); under CI=true a missing piece fails the test.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class SlurmClusterTests
{
    // An account every Debian system has, with no rights of its own.
    private const string User = "nobody";

    [Fact]
    public async Task A_job_array_submitted_by_an_unprivileged_user_runs_every_task_as_that_user()
    {
        HostRequirements.Root();
        var missing = SlurmCluster.MissingPrograms();
        HostRequirements.That(missing.Count == 0, $"Slurm is not installed (missing {string.Join(", ", missing)}; ./mis installs slurm-wlm and munge)");
        var cancel = TestContext.Current.CancellationToken;

        await using var cluster = await SlurmCluster.StartAsync(TimeSpan.FromSeconds(60), cancel);
        TestContext.Current.TestOutputHelper?.WriteLine($"slurm cluster up (node idle) in {cluster.StartupTime.TotalSeconds:F2} s");

        // A directory the user may write (sticky, like /tmp) and a script that records its task id.
        string shared = Path.Combine(cluster.Root, "shared");
        Directory.CreateDirectory(shared);
        File.SetUnixFileMode(shared, (UnixFileMode)Convert.ToInt32("1777", 8));
        string script = Path.Combine(shared, "task.sh");
        File.WriteAllText(script, "#!/bin/sh\nid -u > \"task-$SLURM_ARRAY_TASK_ID.txt\"\necho \"$SLURM_ARRAY_TASK_ID of $SLURM_ARRAY_TASK_COUNT\" >> \"task-$SLURM_ARRAY_TASK_ID.txt\"\n");
        File.SetUnixFileMode(script, (UnixFileMode)Convert.ToInt32("755", 8));

        var clock = Stopwatch.StartNew();
        string job = cluster.SubmitAs(User, "--array=0-2", $"--chdir={shared}", $"--output={shared}/slurm-%A_%a.out", script);
        var states = await cluster.WaitForJobAsync(job, TimeSpan.FromMinutes(2), cancel);
        TestContext.Current.TestOutputHelper?.WriteLine($"job array {job} (3 tasks) done in {clock.Elapsed.TotalSeconds:F2} s");

        Assert.Equal(["0", "1", "2"], states.Keys.Order(StringComparer.Ordinal));
        Assert.All(states, s => Assert.True(s.Value == "COMPLETED", $"task {s.Key}: {s.Value}{cluster.Logs()}"));
        string uid = Id("-u", User);
        for (int task = 0; task < 3; task++)
        {
            string file = Path.Combine(shared, $"task-{task}.txt");
            Assert.True(File.Exists(file), $"task {task} wrote nothing{cluster.Logs()}");
            Assert.Equal($"{uid}\n{task} of 3\n", File.ReadAllText(file));
            Assert.Equal(uid, Stat(file));
        }
    }

    private static string Id(string flag, string user) => Output("id", flag, user);

    private static string Stat(string file) => Output("stat", "-c", "%u", file);

    private static string Output(string program, params string[] args)
    {
        using var p = Process.Start(new ProcessStartInfo(program, args) { RedirectStandardOutput = true })!;
        string text = p.StandardOutput.ReadToEnd().Trim();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{program} {string.Join(' ', args)} failed");
        return text;
    }
}
