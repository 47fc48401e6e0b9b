using System.Diagnostics;
using Mis.Enforcer.Confinement;
using Mis.Enforcer.Policy;
using Mis.Enforcer.Run;
using Mis.Testing;

namespace Mis.Enforcer.Tests;

/// <summary>
/// Exec is decided on what the kernel really runs: each #! interpreter of a script, an ELF's
/// program interpreter, and — through the kernel's sched_process_exec check — the file the kernel
/// ended up executing after the supervisor continued the syscall. An exec allow-list holds where
/// an exec deny rule cannot (a copy, a memfd, ld.so), for both identities.
/// </summary>
public sealed class ConfinementExecTests
{
    private static WorkloadIdentity? As(bool root) => root ? WorkloadIdentity.Root : null;

    private static string Copy(string from, string to, int mode = 0x1ED)
    {
        File.Copy(from, to);
        ConfinementHarness.Chmod(to, mode);
        return to;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_script_whose_interpreter_is_exec_denied_is_refused(bool asRoot)
    {
        using var h = new ConfinementHarness();
        string denied = Copy("/usr/bin/cat", Path.Combine(h.Dir, "denied-cat"));
        string script = Path.Combine(h.Dir, "script");
        File.WriteAllText(script, $"#!{denied}\nSCRIPT-BODY\n");
        ConfinementHarness.Chmod(script, 0x1ED);
        // Two levels: a script whose interpreter is a script whose interpreter is denied.
        string outer = Path.Combine(h.Dir, "outer");
        File.WriteAllText(outer, $"#! {script} -x\n");
        ConfinementHarness.Chmod(outer, 0x1ED);
        h.Decider.DeniedExecs.Add(FakeDecider.IdOf(denied));

        var run = h.Sh($"{script}; echo rc=$?; {outer}; echo rc=$?", As(asRoot));

        Assert.DoesNotContain("SCRIPT-BODY", run.Stdout);
        Assert.Equal(2, run.Stdout.Split("rc=126").Length - 1);
        Assert.Equal([denied, denied], h.Sink.Reports.Select(r => r.Target).ToArray());
        Assert.All(h.Sink.Reports, r => Assert.Equal(ViolationOp.Exec, r.Op));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void An_ELF_whose_program_interpreter_is_exec_denied_is_refused(bool asRoot)
    {
        using var h = new ConfinementHarness();
        string loader = Copy("/lib64/ld-linux-x86-64.so.2", Path.Combine(h.Dir, "ld.so"));
        string program = Copy("/usr/bin/true", Path.Combine(h.Dir, "prog"));
        Patchelf("--set-interpreter", loader, program);

        var allowed = h.Sh($"{program}; echo rc=$?", As(asRoot)); // runs while the loader is not denied
        h.Decider.DeniedExecs.Add(FakeDecider.IdOf(loader));
        var refused = h.Sh($"{program}; echo rc=$?", As(asRoot));

        Assert.Contains("rc=0", allowed.Stdout);
        Assert.Contains("rc=126", refused.Stdout);
        var report = Assert.Single(h.Sink.Reports);
        Assert.Equal((ViolationOp.Exec, loader), (report.Op, report.Target));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void An_exec_allow_list_refuses_copies_memfds_workload_written_files_and_the_loader_run_as_a_program(bool asRoot)
    {
        using var h = new ConfinementHarness();
        // Made before the run, outside the allow-list: a program the policy does not name.
        string unlisted = Copy("/usr/bin/true", Path.Combine(h.Dir, "unlisted"));
        h.Policy = new WorkloadPolicy("allowlist", Verdict.Allow,
            [new FileRule(Glob("/usr/bin/**"), FileOps.Exec, Verdict.Allow, "test: /usr/bin/**"), .. BuiltinPolicy.Rules()], [], [])
        {
            ExecAllowList = true,
        };
        var run = h.Python($$"""
            import os, shutil, subprocess
            def attempt(name, argv, **kw):
                try:
                    print(name, "rc=%d" % subprocess.run(argv, **kw).returncode, flush=True)
                except PermissionError:
                    print(name, "EPERM", flush=True)
            attempt("listed", ["/usr/bin/true"])
            attempt("unlisted", ["{{unlisted}}"])
            shutil.copy("/usr/bin/true", "{{h.Writable}}/copy")
            attempt("copy", ["{{h.Writable}}/copy"])
            fd = os.memfd_create("x", 0)
            os.write(fd, open("/usr/bin/true", "rb").read())
            attempt("memfd", ["/proc/self/fd/%d" % fd], pass_fds=[fd])
            attempt("loader", ["/lib64/ld-linux-x86-64.so.2", "{{unlisted}}"])
            """, As(asRoot));
        Assert.Contains("listed rc=0\n", run.Stdout);
        foreach (string name in new[] { "unlisted", "copy", "memfd", "loader" })
            Assert.True(run.Stdout.Contains($"{name} EPERM\n"), $"{name} was not refused: {run}");
        Assert.Equal(4, h.Violations(ViolationOp.Exec));
    }

    [Fact]
    public void A_memfd_program_is_approved_as_the_kernel_holds_it_and_runs_under_the_default_exec_mode()
    {
        // The kernel's check compares the file it executed with the approval; a mismatch of
        // identities would kill honest execs (memfd's mount is in no mountinfo; the overlay case,
        // where stat shows the file below, is the gym's KernelFilesTests). Under the default exec
        // mode a memfd program runs.
        HostRequirements.Root();
        var (result, output) = RunCapturing(new RunRequest
        {
            Command = ["/usr/bin/python3", "-c", """
                import os
                fd = os.memfd_create("prog", 0)
                os.write(fd, open("/usr/bin/echo", "rb").read())
                pid = os.fork()
                if pid == 0:
                    os.execv("/proc/self/fd/%d" % fd, ["echo", "from-memfd"])
                os.waitpid(pid, 0)
                """],
        });
        Assert.Equal(0, result.ExitStatus);
        Assert.Contains("from-memfd", output);
        Assert.Equal(0UL, result.Violations);
    }

    [Fact]
    public void A_path_rewritten_after_the_decision_is_caught_by_the_kernel_and_never_runs()
    {
        // Glob-denied only (no inode is known when the policy is built): only the kernel's check of
        // what it really executed against what the supervisor approved stops the race.
        using var h = new ConfinementHarness();
        string race = h.Compile("race_exec");
        string ok = Copy(race, Path.Combine(h.Dir, "ok"));
        string no = Copy(race, Path.Combine(h.Dir, "no"));
        var policy = new WorkloadPolicy("race", Verdict.Allow,
            [new FileRule(Glob($"{h.Dir}/n?"), FileOps.Exec, Verdict.Deny, "test: n?"), .. BuiltinPolicy.Rules()], [], []);
        var (result, output) = RunCapturing(new RunRequest { Command = [race, ok, no, "40"], Policy = policy, Learn = true });
        Assert.Equal(0, result.ExitStatus);
        Assert.DoesNotContain("ran no", output);
        Assert.Contains("attempts=40", output);
        int killed = int.Parse(output.Split("killed=")[1].Split('\n')[0]);
        Assert.True(killed > 0, $"the race was never won, so the test proved nothing: {output}");
        // Learning mode (so the denied attempts do not escalate to a kill of the whole run): each
        // caught exec is still reported as an exec violation.
        int execs = result.ViolationsByOperation.GetValueOrDefault("exec");
        Assert.True(execs >= killed, $"each caught exec counts: {string.Join(", ", result.ViolationsByOperation)}; {killed} kills");
    }

    /// <summary>Runs the request under the real enforcer (<c>mis run</c>'s runner) and returns its result and stdout.</summary>
    private static (Run.RunResult Result, string Stdout) RunCapturing(RunRequest request)
    {
        var (read, write) = ConfinementHarness.Pipe();
        using (read)
        {
            Run.RunResult result;
            using (write)
                result = WorkloadRunner.Run(request with { Stdout = write }, TestContext.Current.CancellationToken);
            using var reader = new StreamReader(new FileStream(read, FileAccess.Read));
            return (result, reader.ReadToEnd());
        }
    }

    private static PathGlob Glob(string pattern) => PathGlob.TryParse(pattern, out var glob, out var error) ? glob! : throw new ArgumentException(error);

    private static void Patchelf(params string[] args)
    {
        using var p = Process.Start(new ProcessStartInfo("patchelf", args) { RedirectStandardError = true })!;
        string errors = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"patchelf {string.Join(' ', args)}: {errors}");
    }
}
