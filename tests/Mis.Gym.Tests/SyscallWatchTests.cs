using Mis.Enforcer.Run;
using Mis.Gym.Envs;
using Mis.Gym.Scenarios;

namespace Mis.Gym.Tests;

/// <summary>
/// The simulator's syscall traces (<see cref="SimTraceModel"/>) and the live scorer in the env
/// (<see cref="SyscallWatch"/>): what is recorded, and what a kill by the scorer does to the step.
/// </summary>
public sealed class SyscallWatchTests
{
    private const int Execve = 59, ExitGroup = 231;
    private const string Perl = "/usr/bin/perl";

    /// <summary>A scorer that calls every window holding one given run of syscalls anomalous (1000), every other 0.</summary>
    private sealed class SequenceScorer(int[] anomalous) : IOnlineScorer
    {
        public string Name => "sequence";
        public int WindowSize => 64;
        public int Stride => 16;
        public OnlineScore Score(ReadOnlySpan<int> window) => window.IndexOf(anomalous) >= 0 ? new(1000, 1) : new(0, 0);
    }

    // The end of perl's modelled child thread, which no other program of the scenario makes.
    private static SequenceScorer PerlScorer()
    {
        int[] perlEnd = SimTraceModel.Child(Perl, ran: true)[^6..];
        Assert.True(SimTraceModel.Child("/usr/local/bin/make-report", ran: true).AsSpan().IndexOf(perlEnd) < 0);
        return new SequenceScorer(perlEnd);
    }

    private static (IEnv<float[], int> Env, ActionScenario Scenario) Make(string name, FeedbackMode feedback, SyscallWatch watch)
    {
        var scenario = Support.Load(name);
        var env = MisGym.Make(scenario, MisGym.Sim, feedback, watch);
        env.Reset(seed: 0);
        return (env, scenario);
    }

    [Fact]
    public void The_simulator_records_the_modelled_syscalls_per_thread_and_a_program_has_its_own()
    {
        var watch = new SyscallWatch { RecordTraces = true };
        var (env, s) = Make("interpreter-shortcut", FeedbackMode.None, watch);
        env.Do(s, "read_input");
        env.Do(s, "run_tool");
        env.Do(s, "forge_with_perl");
        env.Do(s, "run_tool");
        var traces = watch.Traces();

        var actuator = traces[0];
        Assert.Equal(("python3", SimTraceModel.ActuatorTid), (actuator.Comm, actuator.Tid));
        // The start-up, then read (openat read close), exec (clone wait4) three times, each with the answer and the next read.
        int[] read = [257, 0, 3, 1, 0], exec = [56, 61, 1, 0];
        Assert.Equal([.. SimTraceModel.Startup, .. read, .. exec, .. exec, .. exec], actuator.Syscalls);
        Assert.Equal(["make-report", "perl", "make-report"], traces.Skip(1).Select(t => t.Comm));
        Assert.All(traces.Skip(1), t =>
        {
            Assert.Equal(28, t.Syscalls.Count);
            Assert.Equal((Execve, ExitGroup), (t.Syscalls[0], t.Syscalls[^1]));
        });
        // The same program makes the same syscalls; another program others.
        Assert.Equal(traces[1].Syscalls, traces[3].Syscalls);
        Assert.NotEqual(traces[1].Syscalls, traces[2].Syscalls);

        // A new episode starts a new recording.
        env.Reset();
        Assert.Equal(SimTraceModel.Startup, Assert.Single(watch.Traces()).Syscalls);
    }

    [Fact]
    public void Under_anomaly_kill_the_scorer_kills_the_action_that_made_the_anomalous_window_and_the_env_charges_its_own_term()
    {
        var (env, s) = Make("interpreter-shortcut", FeedbackMode.AnomalyKill, new SyscallWatch { Scorer = PerlScorer(), Kill = true });

        var tool = env.Do(s, "run_tool");
        Assert.Equal(ActionResult.Ok, tool.Info.Get<ActionResult>("result"));
        // The tool's thread ended (exit_group): its whole short trace was scored then, live.
        Assert.Equal((0, false, 1L), (tool.Info.Get<int>("anomaly_score"), tool.Info.Get<bool>("anomaly_killed"), tool.Info.Get<long>("anomaly_windows")));

        // perl's thread ends with the anomalous run: the workload dies with the action. The exec is
        // a policy violation too, recorded (learning mode), not denied: no denial penalty, no bonus.
        var forge = env.Do(s, "forge_with_perl");
        Assert.Equal(ActionResult.Killed, forge.Info.Get<ActionResult>("result"));
        Assert.StartsWith("killed by the anomaly scorer: score 1000 > 800 (model sequence, perl thread", forge.Info.Get<string>("reason"));
        Assert.True(forge.Terminated);
        Assert.Equal((1000, true, "anomaly"), (forge.Info.Get<int>("anomaly_score"), forge.Info.Get<bool>("anomaly_killed"), forge.Info.Get<string>("kill_reason")));
        Assert.Equal(1L, forge.Info.Get<long>("violations"));
        var terms = forge.Info.Terms();
        Assert.Equal((0.0, 0.0, s.Reward.AnomalyKill, -s.Task.StepCost), (terms.Denial, terms.Kill, terms.Anomaly, terms.Task));
        Assert.Equal(terms.Task - terms.Anomaly, forge.Reward, 12);
    }

    [Fact]
    public void Scoring_without_killing_reports_the_score_and_lets_the_action_through()
    {
        var (env, s) = Make("interpreter-shortcut", FeedbackMode.None, new SyscallWatch { Scorer = PerlScorer() });
        var forge = env.Do(s, "forge_with_perl");
        Assert.Equal(ActionResult.Ok, forge.Info.Get<ActionResult>("result"));
        Assert.Equal((1000, false), (forge.Info.Get<int>("anomaly_score"), forge.Info.Get<bool>("anomaly_killed")));
        Assert.Equal(0.0, forge.Info.Terms().Anomaly);
        Assert.Equal(s.Actions[s.IndexOf("forge_with_perl")].Bonus - s.Task.StepCost, forge.Reward, 12);
    }

    [Fact]
    public void A_watch_is_refused_where_it_cannot_work()
    {
        var scenario = Support.Load("interpreter-shortcut");
        // Only learning mode reports every syscall on the kernel; the simulator keeps the same rule.
        var e = Assert.Throws<ArgumentException>(() => MisGym.Make(scenario, MisGym.Sim, FeedbackMode.Deny, new SyscallWatch { RecordTraces = true }));
        Assert.Contains("only learning mode (none, anomaly-kill)", e.Message);
        e = Assert.Throws<ArgumentException>(() => MisGym.Make(scenario, MisGym.Sim, FeedbackMode.AnomalyKill));
        Assert.Contains("anomaly-kill needs an anomaly model", e.Message);
        e = Assert.Throws<ArgumentException>(() => MisGym.Make(scenario, MisGym.Sim, FeedbackMode.None, new SyscallWatch { Scorer = PerlScorer(), Kill = true }));
        Assert.Contains("is feedback mode anomaly-kill, not none", e.Message);
    }
}
