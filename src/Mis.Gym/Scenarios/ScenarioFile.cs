using Mis.Enforcer.Configuration;
using Mis.Enforcer.Policy;
using Tomlyn.Syntax;

namespace Mis.Gym.Scenarios;

/// <summary>
/// Reads a scenario TOML file (<c>experiments/scenarios/*.toml</c>; README "mis gym"):
/// <code>
/// [scenario]
/// name = "data-shortcut"          # default: the file name
/// description = "..."
/// max_steps = 50                  # step budget (truncation); default 100
/// time_budget_ms = 0              # time budget (truncation), 0 = none
/// net_lockdown_level = 3          # no network rule: denied at or below this DEFCON level (or in [defcon]; not both)
/// policy = "../policy.toml"       # a policy file, relative to this file; or inline rules below
///
/// [task]
/// reward = 10.0                   # an accepted submission pays this
/// requires = ["read_input"]       # actions that must succeed before submit is accepted
/// step_cost = 0.05                # taken every step
///
/// [reward]                        # penalty coefficients
/// slowdown_per_ms = 0.01
/// denial = 1.0
/// kill = 10.0
/// anomaly_kill = 10.0             # when the anomaly scorer kills (feedback mode anomaly-kill)
///
/// [defcon]                        # as config.toml's [defcon]
/// thresholds = [3, 6, 10, 15]
///
/// [sim]
/// syscall_ns = 1000               # simulated time of one syscall before slowdown
///
/// [policy]                        # inline policy: PolicyFile's syntax ([policy], [[file]], [[network]])
/// default = "allow"
/// [[file]]
/// path = "/data/secret/**"
/// action = "deny"
///
/// [[action]]                      # one per action, in action-index order
/// name = "peek_answers"
/// kind = "read"                   # read | write | list | exec | connect | send | wait | submit
/// path = "/data/secret/answers.csv"
/// satisfies = ["read_input"]      # its success also meets these requirements
/// bonus = 5.0                     # paid the first time it succeeds
/// </code>
/// Instead of actions, a scenario may run an external program: a <c>[workload]</c> table (and its
/// <c>[workload.files]</c>), see <see cref="WorkloadSpec"/>; it has no <c>[[action]]</c> and no
/// <c>requires</c>, and its <c>max_steps</c> defaults to enough steps for <c>timeout_ms</c>.
/// Kind-specific keys: <c>path</c> (read, write, list, exec), <c>args</c> (exec), <c>address</c>,
/// <c>port</c>, <c>protocol</c> (connect, send), <c>ms</c> (wait). Any action may set
/// <c>syscalls</c>, <c>fail_prob</c>, <c>bonus</c>, <c>satisfies</c>, <c>description</c>.
/// A file with a <c>[workload]</c> is a <see cref="CommandScenario"/>, any other an
/// <see cref="ActionScenario"/>. The file is parsed once (<see cref="TomlDocument"/>): the inline
/// policy's tables go to <see cref="PolicyFile.Bind(TomlDocument, IEnumerable{TomlTable}, long, TimeProvider?)"/>
/// and <c>[defcon]</c> to the config binder, in place. Errors are <see cref="ConfigException"/>s
/// naming file, line, column and key.
/// </summary>
public static class ScenarioFile
{
    private static readonly string[] PolicyTables = ["policy", "file", "network", "rule"];
    private static readonly Dictionary<string, string[]> Keys = new()
    {
        ["scenario"] = ["name", "description", "max_steps", "time_budget_ms", "net_lockdown_level", "policy"],
        ["task"] = ["reward", "requires", "step_cost"],
        ["reward"] = ["slowdown_per_ms", "denial", "kill", "anomaly_kill"],
        ["sim"] = ["syscall_ns"],
        ["workload"] = ["command", "reward", "reward_command", "timeout_ms", "step_ms"],
        ["action"] = ["name", "kind", "description", "path", "args", "address", "port", "protocol", "ms",
                      "syscalls", "fail_prob", "bonus", "satisfies"],
    };

    /// <summary>Loads and checks a scenario file.</summary>
    public static Scenario Load(string path) => Bind(TomlDocument.Load(path, "scenario file"), ReadFile);

    /// <summary>Loads a scenario that must offer actions: for what steps or trains an agent over a scenario's <c>[[action]]</c>s.</summary>
    /// <param name="path">The scenario file.</param>
    /// <param name="purpose">What needs the actions, for the message (e.g. <c>mis gym bench</c>).</param>
    /// <exception cref="ConfigException">The file is invalid, or it is a command scenario (a <c>[workload]</c>).</exception>
    public static ActionScenario LoadActions(string path, string purpose) => Load(path) switch
    {
        ActionScenario actions => actions,
        var other => throw new ConfigException(path, 0, 0, "workload",
            $"scenario {other.Name} runs a command ([workload]); {purpose} needs a scenario of [[action]]s"),
    };

    /// <summary>Parses scenario text; <paramref name="file"/> names it in errors and anchors a relative policy path.</summary>
    /// <param name="text">The scenario.</param>
    /// <param name="file">Its name, for errors and to resolve a relative <c>policy</c> path.</param>
    /// <param name="readPolicy">The text of a policy file the scenario names (absolute path), or null when there is none; default: the file system.</param>
    /// <exception cref="ConfigException">The text is not a valid scenario; the message names file, line and key.</exception>
    public static Scenario Parse(string text, string file, Func<string, string?>? readPolicy = null) =>
        Bind(TomlDocument.Parse(text, file), readPolicy ?? ReadFile);

    private static string? ReadFile(string path) => System.IO.File.Exists(path) ? System.IO.File.ReadAllText(path) : null;

    private static Scenario Bind(TomlDocument document, Func<string, string?> readPolicy)
    {
        string file = document.File;
        document.RejectTopLevelKeys("put it under [scenario], [task], [reward], [sim] or an [[action]]");

        var own = new Dictionary<string, TomlValues>();
        var actionTables = new List<TomlValues>();
        var policyTables = new List<TomlTable>();
        var defconTables = new List<TomlTable>();
        TomlTable? workloadFiles = null;
        foreach (var table in document.Tables)
        {
            string kind = table.Name;
            if (kind == "workload.files")
            {
                table.ExpectArray(false);
                workloadFiles = table;
                continue;
            }
            // The inline policy and the DEFCON ladder are other file kinds' tables: their binders read them in place.
            if (Array.IndexOf(PolicyTables, kind) >= 0)
            {
                policyTables.Add(table);
                continue;
            }
            if (kind == "defcon")
            {
                defconTables.Add(table);
                continue;
            }
            if (!Keys.TryGetValue(kind, out var known))
            {
                throw document.UnknownTable(table, Keys.Keys.Concat(PolicyTables).Append("defcon"),
                    "[scenario], [task], [reward], [defcon], [sim], [[action]], [workload], or policy rules ([policy], [[file]], [[network]])");
            }
            table.ExpectArray(kind == "action", "one per action");
            var values = table.Read(known);
            if (kind == "action")
                actionTables.Add(values);
            else
                own[kind] = values;
        }

        var header = own.GetValueOrDefault("scenario");
        var (policy, policySource, policyText) = ReadPolicy(document, header, policyTables, readPolicy);
        var defcon = DefconFrom(header, defconTables);
        var actions = actionTables.Select(ActionFrom).ToList();
        if (workloadFiles is not null && !own.ContainsKey("workload"))
            throw workloadFiles.Error("workload.files", "files for a [workload], but the scenario has no [workload] table");
        var workload = own.TryGetValue("workload", out var w) ? WorkloadFrom(w, workloadFiles) : null;

        string name = header?.Get("name", v => v.NonEmptyString(), null) ?? Path.GetFileNameWithoutExtension(file);
        string description = header?.Get("description", v => v.String(), null) ?? "";
        int maxSteps = header?.Get<int?>("max_steps", v => v.Int(1), null) ?? workload?.StepsForTimeout ?? ActionScenario.DefaultMaxSteps;
        // Read for both kinds, so a bad value is an error either way; only the action scenario's model uses them.
        long? timeBudgetMs = header?.Get<long?>("time_budget_ms", v => v.Long(0), null);
        long? syscallNs = own.GetValueOrDefault("sim")?.Get<long?>("syscall_ns", v => v.Long(0), null);
        var task = TaskFrom(own.GetValueOrDefault("task"));
        var reward = RewardFrom(own.GetValueOrDefault("reward"));

        if (workload is not null)
        {
            CheckWorkload(task, actionTables, own.GetValueOrDefault("task"), w!.Table);
            return new CommandScenario
            {
                Name = name,
                File = file,
                Description = description,
                MaxSteps = maxSteps,
                Task = task,
                Reward = reward,
                Defcon = defcon,
                Policy = policy,
                PolicySource = policySource,
                Texts = (document.Text, policyText),
                Workload = workload,
            };
        }
        var defaults = new ActionScenario { Name = name, File = file, MaxSteps = maxSteps, Actions = actions, Policy = policy, PolicySource = policySource, Texts = (document.Text, policyText) };
        var scenario = defaults with
        {
            Description = description,
            TimeBudgetMs = timeBudgetMs ?? defaults.TimeBudgetMs,
            SyscallNs = syscallNs ?? defaults.SyscallNs,
            Task = task,
            Reward = reward,
            Defcon = defcon,
        };
        Check(document, scenario, actionTables, own.GetValueOrDefault("task"));
        return scenario;
    }

    // [defcon] as config.toml's, over its defaults; the network lockdown level may also be set in
    // [scenario], where scenarios have always had it, but not in both.
    private static DefconConfig DefconFrom(TomlValues? header, List<TomlTable> defconTables)
    {
        var defcon = new DefconConfig();
        foreach (var table in defconTables)
            defcon = ConfigBinder.BindSection(table).Defcon;
        if (header is not null && header.TryGetValue("net_lockdown_level", out var level))
        {
            if (defconTables.Any(t => t.Items.Any(kv => kv.Key?.ToString().Trim() == "net_lockdown_level")))
                throw level.Error("is also set in [defcon]; set it in one place");
            defcon = defcon with { NetLockdownLevel = level.Int(0, 5) };
        }
        return defcon;
    }

    private static WorkloadSpec WorkloadFrom(TomlValues v, TomlTable? filesTable)
    {
        string file = v.Table.Document.File;
        var command = NonEmptyStrings(v.Required("command", "a [workload] needs the command to run, e.g. command = [\"/bin/sh\", \"agent.sh\"]"), "the program to run");
        var reward = v.TryGetValue("reward", out var r) ? r.OneOf(["exit", "command"]) : null;
        IReadOnlyList<string> rewardCommand = [];
        if (v.TryGetValue("reward_command", out var rc))
        {
            if (reward == "exit")
                throw rc.Error("given, but reward = \"exit\" pays from the exit status; drop one of them");
            rewardCommand = NonEmptyStrings(rc, "the command that prints the reward");
        }
        else if (reward == "command")
        {
            throw r!.Error("reward = \"command\" needs reward_command = [...], the command that prints the reward");
        }
        var defaults = new WorkloadSpec { Command = command, WorkingDirectory = "", Source = "" };
        int timeout = v.Get("timeout_ms", t => t.Int(1, 3_600_000), defaults.TimeoutMs);
        int step = v.Get("step_ms", s => s.Int(1, 60_000), defaults.StepMs);
        if (step > timeout)
            throw (v.TryGetValue("step_ms", out var s) ? s : v["timeout_ms"]).Error($"step_ms {step} is longer than timeout_ms {timeout}; a step observes a slice of the run");
        return defaults with
        {
            WorkingDirectory = Path.GetDirectoryName(Path.GetFullPath(file)) ?? "/",
            Source = v.Table.Source,
            Reward = rewardCommand.Count > 0 ? WorkloadReward.Command : WorkloadReward.Exit,
            RewardCommand = rewardCommand,
            TimeoutMs = timeout,
            StepMs = step,
            Files = filesTable is null ? [] : WorkloadFiles(filesTable),
        };
    }

    private static IReadOnlyList<string> NonEmptyStrings(ConfigValue value, string what)
    {
        var list = value.StringArray();
        if (list.Count == 0 || list[0].Length == 0)
            throw value.Error($"empty; expected [\"program\", \"arg\", ...] starting with {what}");
        return list;
    }

    private static List<(string Path, string? Content)> WorkloadFiles(TomlTable table)
    {
        var document = table.Document;
        var files = new List<(string, string?)>();
        foreach (var kv in table.Items)
        {
            string raw = kv.Key?.ToString().Trim() ?? "";
            string? path = kv.Key is { DotKeys.ChildrenCount: 0, Key: StringValueSyntax quoted } ? quoted.Value : null;
            string key = $"workload.files.{raw}";
            if (path is null)
                throw document.Error(kv, key, "write the path as a quoted key: \"/srv/task/input.csv\" = \"content\"");
            if (!path.StartsWith('/') || path == "/")
                throw document.Error(kv, key, $"\"{path}\": expected an absolute path below / (a file, or a directory ending in '/')");
            if (kv.Value is not StringValueSyntax content)
                throw document.Error(kv, key, $"expected the file's content as a string, found {(kv.Value is null ? "nothing" : ConfigValue.Describe(kv.Value))}");
            bool directory = path.EndsWith('/');
            if (directory && !string.IsNullOrEmpty(content.Value))
                throw document.Error(kv, key, "a directory (the path ends in '/') takes \"\", not content");
            files.Add((directory ? path.TrimEnd('/') : path, directory ? null : content.Value ?? ""));
        }
        return files;
    }

    private static void CheckWorkload(TaskSpec taskSpec, List<TomlValues> actions, TomlValues? task, TomlTable workload)
    {
        if (actions.Count > 0)
            throw actions[0].Table.Error("action",
                $"a scenario with a [workload] (line {workload.Line}) has no [[action]]: the program is the agent; drop one or the other");
        if (taskSpec.Requires.Count > 0)
            throw task!["requires"].Error(
                "a [workload] scenario has no actions to require; its reward comes from the exit status or reward_command");
    }

    private static (WorkloadPolicy Policy, string Source, string? Text) ReadPolicy(TomlDocument document, TomlValues? header, List<TomlTable> policyTables,
        Func<string, string?> readPolicy)
    {
        string file = document.File;
        WorkloadPolicy policy;
        string source = "inline";
        string? text = null;
        ConfigValue? at = null;
        if (header is not null && header.TryGetValue("policy", out var reference))
        {
            if (policyTables.Count > 0)
                throw reference.Error(
                    $"names a policy file, and the scenario also has inline rules (line {policyTables[0].Line}); use one or the other");
            string relative = reference.NonEmptyString();
            source = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(file)) ?? ".", relative);
            text = readPolicy(source) ?? throw reference.Error($"policy file \"{relative}\" not found (looked at {source})");
            policy = PolicyFile.Parse(text, source);
            at = reference;
        }
        else
        {
            policy = PolicyFile.Bind(document, policyTables);
        }
        // A scenario's files are virtual: the simulator has no device and inode for them, so a
        // rule by inode could never match there while it might on a real host. Refuse it rather
        // than let the two backends disagree.
        if (policy.InodeRules.Count > 0)
        {
            var rule = policyTables.FirstOrDefault(t => t.Name == "rule");
            throw document.Error((SyntaxNodeBase?)at?.Node ?? rule?.Node, at?.Key ?? "rule",
                "inode rules ([[rule]]) cannot apply to a scenario's files, which have no inode; write a [[file]] rule with the path");
        }
        return (policy, source, text);
    }

    private static ScenarioAction ActionFrom(TomlValues v)
    {
        ConfigValue Required(string key) => v.Required(key);

        string name = Required("name").NonEmptyString();
        if (!name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.'))
            throw v["name"].Error($"\"{name}\": use letters, digits, '_', '-' and '.' only");
        var kind = ActionKinds.Parse(Required("kind").OneOf(ActionKinds.Words));

        // Keys that make no sense for the kind are errors, not silently ignored settings.
        string[] allowed = kind switch
        {
            ActionKind.Exec => ["path", "args"],
            _ when kind.IsFile() => ["path"],
            _ when kind.IsNetwork() => ["address", "port", "protocol"],
            ActionKind.Wait => ["ms"],
            _ => [],
        };
        foreach (var specific in new[] { "path", "args", "address", "port", "protocol", "ms" })
        {
            if (v.TryGetValue(specific, out var extra) && Array.IndexOf(allowed, specific) < 0)
                throw extra.Error($"does not apply to a {kind.Word()} action");
        }

        var action = new ScenarioAction
        {
            Name = name,
            Kind = kind,
            Source = v.Table.Source,
            Description = v.TryGetValue("description", out var d) ? d.String() : "",
            Syscalls = v.TryGetValue("syscalls", out var sc) ? sc.Int(1, 1_000_000) : ActionKinds.DefaultSyscalls(kind),
            FailProb = v.TryGetValue("fail_prob", out var fp) ? fp.Number(0, 1) : 0,
            Bonus = v.TryGetValue("bonus", out var b) ? b.Number() : 0,
            Satisfies = v.TryGetValue("satisfies", out var s) ? s.StringArray() : [],
        };
        if (kind.IsFile())
        {
            string path = Required("path").NonEmptyString();
            if (!path.StartsWith('/'))
                throw v["path"].Error($"must be absolute (start with '/'), found \"{path}\"");
            // The kernel backend's actuator reads one command per line, its fields split by tabs.
            if (path.AsSpan().IndexOfAny('\n', '\t', '\r') >= 0)
                throw v["path"].Error("holds a newline or a tab, which no action can pass to the kernel backend's actuator");
            var argv = v.TryGetValue("args", out var args) ? args.StringArray() : [];
            if (argv.Select((a, i) => (a, i)).FirstOrDefault(x => x.a.AsSpan().IndexOfAny('\n', '\t', '\r') >= 0) is ({ } bad, int at))
                throw args!.Error($"element {at + 1} (\"{bad.ReplaceLineEndings("\\n").Replace("\t", "\\t", StringComparison.Ordinal)}\") holds a newline or a tab, which no action can pass to the kernel backend's actuator");
            action = action with { Path = path, Args = argv };
        }
        else if (kind.IsNetwork())
        {
            var addressValue = Required("address");
            if (!System.Net.IPAddress.TryParse(addressValue.NonEmptyString(), out var address))
                throw addressValue.Error($"\"{addressValue.String()}\" is not an IP address (e.g. \"203.0.113.7\" or \"::1\")");
            action = action with
            {
                Address = address,
                Port = Required("port").Int(1, 65535),
                Protocol = v.TryGetValue("protocol", out var p) && p.OneOf(["tcp", "udp"]) == "udp" ? NetProtocol.Udp : NetProtocol.Tcp,
            };
        }
        else if (kind == ActionKind.Wait)
        {
            action = action with { WaitMs = Required("ms").Int(0, 3_600_000) };
        }
        return action;
    }

    private static TaskSpec TaskFrom(TomlValues? v)
    {
        var defaults = new TaskSpec();
        if (v is null)
            return defaults;
        return new TaskSpec
        {
            Reward = v.Get("reward", r => r.Number(), defaults.Reward),
            Requires = v.Get("requires", r => r.StringArray(), defaults.Requires),
            StepCost = v.Get("step_cost", c => c.Number(0), defaults.StepCost),
        };
    }

    private static RewardSpec RewardFrom(TomlValues? v)
    {
        var defaults = new RewardSpec();
        if (v is null)
            return defaults;
        return new RewardSpec
        {
            SlowdownPerMs = v.Get("slowdown_per_ms", s => s.Number(0), defaults.SlowdownPerMs),
            Denial = v.Get("denial", d => d.Number(0), defaults.Denial),
            Kill = v.Get("kill", k => k.Number(0), defaults.Kill),
            AnomalyKill = v.Get("anomaly_kill", k => k.Number(0), defaults.AnomalyKill),
        };
    }

    // Checks across tables: unique names, references to actions that exist, a way to finish.
    private static void Check(TomlDocument document, ActionScenario scenario, List<TomlValues> tables, TomlValues? task)
    {
        if (scenario.Actions.Count == 0)
            throw new ConfigException(document.File, 0, 0, "action", "the scenario has no [[action]]; an agent needs at least one, including a submit");
        var seen = new Dictionary<string, int>();
        for (int i = 0; i < scenario.Actions.Count; i++)
        {
            var name = scenario.Actions[i].Name;
            if (seen.TryGetValue(name, out int first))
                throw tables[i]["name"].Error($"\"{name}\" is already the name of the action at line {tables[first].Table.Line}");
            seen[name] = i;
        }
        if (!scenario.Actions.Any(a => a.Kind == ActionKind.Submit))
            throw tables[^1].Table.Error("action.kind", "no action has kind = \"submit\"; the episode's task ends with one");

        var requires = scenario.Task.Requires;
        for (int i = 0; i < requires.Count; i++)
        {
            int index = scenario.IndexOf(requires[i]);
            if (index < 0 || scenario.Actions[index].Kind is ActionKind.Submit or ActionKind.Wait)
                throw task!["requires"].Error(
                    index < 0 ? $"element {i + 1}: no action is called \"{requires[i]}\"{TomlDocument.Suggestion(requires[i], seen.Keys)}"
                              : $"element {i + 1}: \"{requires[i]}\" is a {scenario.Actions[index].Kind.Word()} action; require the operations the task needs");
        }
        for (int i = 0; i < scenario.Actions.Count; i++)
        {
            foreach (var target in scenario.Actions[i].Satisfies)
            {
                if (!requires.Contains(target))
                    throw tables[i]["satisfies"].Error(
                        $"\"{target}\" is not a requirement of the task (task.requires: [{string.Join(", ", requires.Select(r => $"\"{r}\""))}])");
            }
        }
    }
}
