using System.Net;
using Mis.Enforcer.Configuration;
using Mis.Enforcer.Policy;

namespace Mis.Gym.Scenarios;

/// <summary>What kind of operation a scenario action performs.</summary>
public enum ActionKind
{
    /// <summary>Read a file: open it for reading (the policy decides <c>read</c> on its path).</summary>
    Read,
    /// <summary>Write a file: open it for writing (<c>write</c>).</summary>
    Write,
    /// <summary>List a directory: open it for reading (<c>read</c> on the directory's path).</summary>
    List,
    /// <summary>Run a program (<c>exec</c> on its path).</summary>
    Exec,
    /// <summary>Open a connection to an address (the network rules, as at <c>connect()</c>).</summary>
    Connect,
    /// <summary>Send data to an address (the network rules, as at <c>connect()</c>/<c>sendmsg()</c>).</summary>
    Send,
    /// <summary>Do nothing for a while: nothing to decide, time passes (and violations may decay).</summary>
    Wait,
    /// <summary>Hand in the result: ends the episode (terminated); pays the task reward if its requirements were met.</summary>
    Submit,
}

/// <summary>Per-kind facts: the TOML word and the simulated syscall cost.</summary>
public static class ActionKinds
{
    /// <summary>
    /// Syscalls one action of each kind costs by default, all charged at the DEFCON level in force
    /// when the action starts (the kernel's sys_enter hook runs before the deny point decides):
    /// read and write 3 (openat, read/write, close); list 4 (openat O_DIRECTORY, getdents64 twice,
    /// close); exec 30 (clone, execve, the small program's ~26 syscalls of loading and work,
    /// exit_group, wait4); connect 3 (socket, connect, close); send 4 (socket, connect, sendto,
    /// close); wait 1 (clock_nanosleep); submit 1 (the write of the answer). An action's
    /// <c>syscalls</c> key overrides it.
    /// </summary>
    internal static int DefaultSyscalls(ActionKind kind) => kind switch
    {
        ActionKind.Read or ActionKind.Write or ActionKind.Connect => 3,
        ActionKind.List or ActionKind.Send => 4,
        ActionKind.Exec => 30,
        _ => 1,
    };

    internal static readonly string[] Words = ["read", "write", "list", "exec", "connect", "send", "wait", "submit"];

    internal static ActionKind Parse(string word) => (ActionKind)Array.IndexOf(Words, word);

    internal static string Word(this ActionKind kind) => Words[(int)kind];

    internal static bool IsFile(this ActionKind kind) => kind is ActionKind.Read or ActionKind.Write or ActionKind.List or ActionKind.Exec;

    internal static bool IsNetwork(this ActionKind kind) => kind is ActionKind.Connect or ActionKind.Send;
}

/// <summary>One action the agent can take: a concrete operation (action index = its position in the file).</summary>
public sealed record ScenarioAction
{
    /// <summary>Unique name, used by <c>requires</c> and <c>satisfies</c> and reported in info.</summary>
    public required string Name { get; init; }

    /// <summary>The operation.</summary>
    public required ActionKind Kind { get; init; }

    /// <summary>Where it was written (<c>file.toml:12</c>).</summary>
    public required string Source { get; init; }

    /// <summary>Free text for people.</summary>
    public string Description { get; init; } = "";

    /// <summary>File or program path (read, write, list, exec); absolute.</summary>
    public string? Path { get; init; }

    /// <summary>Program arguments (exec), for the kernel backend's actuator.</summary>
    public IReadOnlyList<string> Args { get; init; } = [];

    /// <summary>Destination address (connect, send).</summary>
    public IPAddress? Address { get; init; }

    /// <summary>Destination port (connect, send).</summary>
    public int Port { get; init; }

    /// <summary>Protocol (connect, send): tcp or udp.</summary>
    public NetProtocol Protocol { get; init; } = NetProtocol.Tcp;

    /// <summary>Time the action waits (wait), in milliseconds.</summary>
    public int WaitMs { get; init; }

    /// <summary>Syscalls the action costs (see <see cref="ActionKinds.DefaultSyscalls"/>).</summary>
    public int Syscalls { get; init; }

    /// <summary>Probability that the operation fails by itself (missing file, refused connection) when the policy allows it.</summary>
    public double FailProb { get; init; }

    /// <summary>Reward paid the first time in an episode the action succeeds (the temptation of a forbidden shortcut).</summary>
    public double Bonus { get; init; }

    /// <summary>Task requirements (action names) this action's success also meets: the shortcut's promise.</summary>
    public IReadOnlyList<string> Satisfies { get; init; } = [];

    /// <summary>The operation for messages: <c>read /data/x</c>, <c>send 203.0.113.7:443/tcp</c>.</summary>
    public string Target => Kind switch
    {
        _ when Kind.IsFile() => Path!,
        _ when Kind.IsNetwork() => $"{(Address!.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{Address}]" : Address)}:{Port}/{Protocol.ToString().ToLowerInvariant()}",
        ActionKind.Wait => $"{WaitMs} ms",
        _ => "",
    };
}

/// <summary>The <c>[task]</c>: what must be done before a submission pays.</summary>
public sealed record TaskSpec
{
    /// <summary><c>reward</c>: paid by an accepted submission. Default 10.</summary>
    public double Reward { get; init; } = 10.0;

    /// <summary><c>requires</c>: action names that must have succeeded (or been satisfied) before submitting. Default none.</summary>
    public IReadOnlyList<string> Requires { get; init; } = [];

    /// <summary><c>step_cost</c>: taken from the task term every step, so shorter solutions pay more. Default 0.</summary>
    public double StepCost { get; init; }
}

/// <summary>The <c>[reward]</c> coefficients of the enforcement penalties.</summary>
public sealed record RewardSpec
{
    /// <summary><c>slowdown_per_ms</c>: penalty per millisecond lost to DEFCON slowdown. Default 0.01.</summary>
    public double SlowdownPerMs { get; init; } = 0.01;

    /// <summary><c>denial</c>: penalty per denied operation (EPERM). Default 1.</summary>
    public double Denial { get; init; } = 1.0;

    /// <summary><c>kill</c>: penalty when the workload is killed at DEFCON 1. Default 10.</summary>
    public double Kill { get; init; } = 10.0;

    /// <summary><c>anomaly_kill</c>: penalty when the anomaly scorer kills the workload (feedback mode <c>anomaly-kill</c>). Default 10.</summary>
    public double AnomalyKill { get; init; } = 10.0;
}

/// <summary>
/// A parsed scenario (format in <see cref="ScenarioFile"/>): what both kinds share, the policy, the
/// DEFCON ladder, the task and the reward coefficients. A scenario is one of two kinds:
/// <see cref="ActionScenario"/> (the agent picks among the scenario's actions; every backend runs
/// it) or <see cref="CommandScenario"/> (the episode runs an external program; kernel only).
/// </summary>
public abstract record Scenario
{
    /// <summary>Name (default: the file name without extension).</summary>
    public required string Name { get; init; }

    /// <summary>The file it was read from, as named to the parser.</summary>
    public required string File { get; init; }

    /// <summary>Free text for people.</summary>
    public string Description { get; init; } = "";

    /// <summary>
    /// <c>max_steps</c>: the step budget (a <see cref="Wrappers.TimeLimit{TObs, TAct}"/>; truncation).
    /// Default <see cref="ActionScenario.DefaultMaxSteps"/> for an action scenario, and
    /// <see cref="WorkloadSpec.StepsForTimeout"/> for a command scenario.
    /// </summary>
    public required int MaxSteps { get; init; }

    /// <summary>The task.</summary>
    public TaskSpec Task { get; init; } = new();

    /// <summary>Penalty coefficients.</summary>
    public RewardSpec Reward { get; init; } = new();

    /// <summary>
    /// The DEFCON ladder (<c>[defcon]</c>, the same keys as config.toml's), with the network
    /// lockdown level (<c>[scenario] net_lockdown_level</c> or <c>[defcon] net_lockdown_level</c>).
    /// </summary>
    public DefconConfig Defcon { get; init; } = new();

    /// <summary>The policy the workload runs under (inline rules or the referenced file).</summary>
    public required WorkloadPolicy Policy { get; init; }

    /// <summary>Where the policy came from: <c>inline</c> or the referenced file's path.</summary>
    public required string PolicySource { get; init; }

    /// <summary>
    /// The text the scenario was parsed from and its policy file's (null for an inline policy), as
    /// read then: what a node daemon parses again for a kernel episode it runs on the caller's
    /// behalf (<see cref="Envs.RemoteKernelBackend"/>), so both sides hold the same scenario even
    /// if the files change meanwhile, and the daemon never reads a caller's files itself.
    /// </summary>
    internal (string Scenario, string? Policy) Texts { get; init; }

    /// <summary>
    /// Whether an episode is a function of its seed: true for an action scenario (its one random
    /// draw comes from the env's seeded source), false for a command scenario, whose program runs
    /// with real timing.
    /// </summary>
    public abstract bool Repeatable { get; }
}

/// <summary>A scenario whose agent acts through the scenario's <c>[[action]]</c>s (action <c>i</c> is <see cref="Actions"/>[i]).</summary>
public sealed record ActionScenario : Scenario
{
    /// <summary>The step budget when <c>max_steps</c> is not given.</summary>
    public const int DefaultMaxSteps = 100;

    /// <summary><c>time_budget_ms</c>: the episode's time budget (simulated time in the simulator; truncation); 0 = none. Default 0.</summary>
    public long TimeBudgetMs { get; init; }

    /// <summary><c>[sim] syscall_ns</c>: simulated time a syscall takes before any slowdown. Default 1000.</summary>
    public long SyscallNs { get; init; } = 1000;

    /// <summary>The actions, in file order (action <c>i</c> of the action space is <c>Actions[i]</c>).</summary>
    public required IReadOnlyList<ScenarioAction> Actions { get; init; }

    /// <inheritdoc />
    public override bool Repeatable => true;

    /// <summary>The index of the action called <paramref name="name"/>, or -1.</summary>
    public int IndexOf(string name)
    {
        for (int i = 0; i < Actions.Count; i++)
        {
            if (Actions[i].Name == name)
                return i;
        }
        return -1;
    }
}

/// <summary>A scenario whose episode runs an external program, its <c>[workload]</c> (kernel backend only).</summary>
public sealed record CommandScenario : Scenario
{
    /// <summary>The program, its reward, timing and files.</summary>
    public required WorkloadSpec Workload { get; init; }

    /// <inheritdoc />
    public override bool Repeatable => false;
}
