using Mis.Enforcer.Configuration;
using Mis.Enforcer.Policy;
using Tomlyn.Parsing;
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
/// net_lockdown_level = 3          # no network rule: denied at or below this DEFCON level
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
/// Errors are <see cref="ConfigException"/>s naming file, line, column and key.
/// </summary>
internal static class ScenarioFile
{
    private static readonly string[] PolicyTables = ["policy", "file", "network", "rule"];
    private static readonly Dictionary<string, string[]> Keys = new()
    {
        ["scenario"] = ["name", "description", "max_steps", "time_budget_ms", "net_lockdown_level", "policy"],
        ["task"] = ["reward", "requires", "step_cost"],
        ["reward"] = ["slowdown_per_ms", "denial", "kill"],
        ["sim"] = ["syscall_ns"],
        ["workload"] = ["command", "reward", "reward_command", "timeout_ms", "step_ms"],
        ["action"] = ["name", "kind", "description", "path", "args", "address", "port", "protocol", "ms",
                      "syscalls", "fail_prob", "bonus", "satisfies"],
    };

    /// <summary>Loads and checks a scenario file.</summary>
    internal static Scenario Load(string path)
    {
        string text;
        try
        {
            text = System.IO.File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException(path, 0, 0, null, $"cannot read the scenario file: {e.Message}", e);
        }
        return Parse(text, path);
    }

    /// <summary>Parses scenario text; <paramref name="file"/> names it in errors and anchors a relative policy path.</summary>
    internal static Scenario Parse(string text, string file)
    {
        var document = SyntaxParser.Parse(text, file, validate: true);
        foreach (var d in document.Diagnostics)
        {
            if (d.Kind == DiagnosticMessageKind.Error)
                throw new ConfigException(file, d.Span.Start.Line + 1, d.Span.Start.Column + 1, null, $"syntax error: {d.Message}");
        }
        if (document.KeyValues.FirstOrDefault() is { } stray)
            throw ConfigBinder.Error(file, stray, stray.Key?.ToString().Trim(), "a setting outside any table; put it under [scenario], [task], [reward], [sim] or an [[action]]");

        var own = new Dictionary<string, Dictionary<string, ConfigValue>>();
        var ownTables = new Dictionary<string, TableSyntaxBase>();
        var actionTables = new List<(TableSyntaxBase Table, Dictionary<string, ConfigValue> Values)>();
        var policyTables = new List<TableSyntaxBase>();
        var defconTables = new List<TableSyntaxBase>();
        TableSyntaxBase? workloadFiles = null;
        foreach (var table in document.Tables)
        {
            string kind = TomlTables.NameOf(table);
            bool isArray = table is TableArraySyntax;
            if (kind == "workload.files")
            {
                if (isArray)
                    throw ConfigBinder.Error(file, table, kind, "write [workload.files], not [[workload.files]]");
                workloadFiles = table;
                continue;
            }
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
                var all = Keys.Keys.Concat(PolicyTables).Append("defcon");
                string hint = ConfigBinder.Closest(kind, all) is { } close ? $" (did you mean '{close}'?)" : "";
                throw ConfigBinder.Error(file, table, kind,
                    $"unknown table; expected [scenario], [task], [reward], [defcon], [sim], [[action]], [workload], or policy rules ([policy], [[file]], [[network]]){hint}");
            }
            if (isArray != (kind == "action"))
                throw ConfigBinder.Error(file, table, kind, kind == "action" ? "write [[action]] (one per action), not [action]" : $"write [{kind}], not [[{kind}]]");
            var values = TomlTables.Read(file, kind, table, known);
            if (kind == "action")
            {
                actionTables.Add((table, values));
            }
            else
            {
                own[kind] = values;
                ownTables[kind] = table;
            }
        }

        var header = own.GetValueOrDefault("scenario") ?? [];
        var (policy, policySource) = ReadPolicy(text, file, header, policyTables);
        var defcon = defconTables.Count == 0 ? new DefconConfig() : MisConfig.Parse(TomlTables.Slice(text, defconTables), file).Defcon;
        var actions = actionTables.Select(a => ActionFrom(file, a.Table, a.Values)).ToList();
        if (workloadFiles is not null && !own.ContainsKey("workload"))
            throw ConfigBinder.Error(file, workloadFiles, "workload.files", "files for a [workload], but the scenario has no [workload] table");
        var workload = own.TryGetValue("workload", out var w) ? WorkloadFrom(file, ownTables["workload"], w, workloadFiles) : null;
        int defaultSteps = workload is null ? 100 : (workload.TimeoutMs + workload.StepMs - 1) / workload.StepMs + 1;
        var scenario = new Scenario
        {
            Name = header.TryGetValue("name", out var n) ? n.NonEmptyString() : Path.GetFileNameWithoutExtension(file),
            File = file,
            Description = header.TryGetValue("description", out var desc) ? desc.String() : "",
            MaxSteps = header.TryGetValue("max_steps", out var ms) ? ms.Int(1) : defaultSteps,
            TimeBudgetMs = header.TryGetValue("time_budget_ms", out var tb) ? tb.Long(0) : 0,
            NetLockdownLevel = header.TryGetValue("net_lockdown_level", out var nl) ? nl.Int(0, 5) : 3,
            SyscallNs = own.GetValueOrDefault("sim")?.GetValueOrDefault("syscall_ns")?.Long(0) ?? 1000,
            Actions = actions,
            Task = TaskFrom(file, own.GetValueOrDefault("task")),
            Reward = RewardFrom(file, own.GetValueOrDefault("reward")),
            Defcon = defcon,
            Policy = policy,
            PolicySource = policySource,
            Workload = workload,
        };
        if (workload is null)
            Check(file, scenario, actionTables, own.GetValueOrDefault("task"));
        else
            CheckWorkload(file, scenario, actionTables, own.GetValueOrDefault("task"), ownTables["workload"]);
        return scenario;
    }

    private static WorkloadSpec WorkloadFrom(string file, TableSyntaxBase table, Dictionary<string, ConfigValue> v, TableSyntaxBase? filesTable)
    {
        if (!v.TryGetValue("command", out var commandValue))
            throw ConfigBinder.Error(file, table, "workload.command", "missing; a [workload] needs the command to run, e.g. command = [\"/bin/sh\", \"agent.sh\"]");
        var command = NonEmptyStrings(file, commandValue, "the program to run");
        var reward = v.TryGetValue("reward", out var r) ? r.OneOf(["exit", "command"]) : null;
        IReadOnlyList<string> rewardCommand = [];
        if (v.TryGetValue("reward_command", out var rc))
        {
            if (reward == "exit")
                throw ConfigBinder.Error(file, rc.Node, rc.Key, "given, but reward = \"exit\" pays from the exit status; drop one of them");
            rewardCommand = NonEmptyStrings(file, rc, "the command that prints the reward");
        }
        else if (reward == "command")
        {
            throw ConfigBinder.Error(file, r!.Node, r.Key, "reward = \"command\" needs reward_command = [...], the command that prints the reward");
        }
        int timeout = v.TryGetValue("timeout_ms", out var t) ? t.Int(1, 3_600_000) : 10_000;
        int step = v.TryGetValue("step_ms", out var s) ? s.Int(1, 60_000) : 100;
        if (step > timeout)
            throw ConfigBinder.Error(file, (s ?? t)!.Node, (s ?? t)!.Key, $"step_ms {step} is longer than timeout_ms {timeout}; a step observes a slice of the run");
        return new WorkloadSpec
        {
            Command = command,
            WorkingDirectory = Path.GetDirectoryName(Path.GetFullPath(file)) ?? "/",
            Source = $"{Path.GetFileName(file)}:{table.Span.Start.Line + 1}",
            Reward = rewardCommand.Count > 0 ? WorkloadReward.Command : WorkloadReward.Exit,
            RewardCommand = rewardCommand,
            TimeoutMs = timeout,
            StepMs = step,
            Files = filesTable is null ? [] : WorkloadFiles(file, filesTable),
        };
    }

    private static IReadOnlyList<string> NonEmptyStrings(string file, ConfigValue value, string what)
    {
        var list = value.StringArray();
        if (list.Count == 0 || list[0].Length == 0)
            throw ConfigBinder.Error(file, value.Node, value.Key, $"empty; expected [\"program\", \"arg\", ...] starting with {what}");
        return list;
    }

    private static List<(string Path, string? Content)> WorkloadFiles(string file, TableSyntaxBase table)
    {
        var files = new List<(string, string?)>();
        foreach (var kv in table.Items)
        {
            string raw = kv.Key?.ToString().Trim() ?? "";
            string? path = kv.Key is { DotKeys.ChildrenCount: 0, Key: StringValueSyntax quoted } ? quoted.Value : null;
            string key = $"workload.files.{raw}";
            if (path is null)
                throw ConfigBinder.Error(file, kv, key, "write the path as a quoted key: \"/srv/task/input.csv\" = \"content\"");
            if (!path.StartsWith('/') || path == "/")
                throw ConfigBinder.Error(file, kv, key, $"\"{path}\": expected an absolute path below / (a file, or a directory ending in '/')");
            if (kv.Value is not StringValueSyntax content)
                throw ConfigBinder.Error(file, kv, key, $"expected the file's content as a string, found {(kv.Value is null ? "nothing" : ConfigValue.Describe(kv.Value))}");
            bool directory = path.EndsWith('/');
            if (directory && !string.IsNullOrEmpty(content.Value))
                throw ConfigBinder.Error(file, kv, key, "a directory (the path ends in '/') takes \"\", not content");
            files.Add((directory ? path.TrimEnd('/') : path, directory ? null : content.Value ?? ""));
        }
        return files;
    }

    private static void CheckWorkload(string file, Scenario scenario, List<(TableSyntaxBase Table, Dictionary<string, ConfigValue> Values)> actions,
        Dictionary<string, ConfigValue>? task, TableSyntaxBase workload)
    {
        if (actions.Count > 0)
            throw ConfigBinder.Error(file, actions[0].Table, "action",
                $"a scenario with a [workload] (line {workload.Span.Start.Line + 1}) has no [[action]]: the program is the agent; drop one or the other");
        if (scenario.Task.Requires.Count > 0)
            throw ConfigBinder.Error(file, task!["requires"].Node, "task.requires",
                "a [workload] scenario has no actions to require; its reward comes from the exit status or reward_command");
    }

    private static (WorkloadPolicy Policy, string Source) ReadPolicy(string text, string file,
        Dictionary<string, ConfigValue> header, List<TableSyntaxBase> policyTables)
    {
        WorkloadPolicy policy;
        string source = "inline";
        ConfigValue? at = null;
        if (header.TryGetValue("policy", out var reference))
        {
            if (policyTables.Count > 0)
                throw ConfigBinder.Error(file, reference.Node, reference.Key,
                    $"names a policy file, and the scenario also has inline rules (line {policyTables[0].Span.Start.Line + 1}); use one or the other");
            string relative = reference.NonEmptyString();
            source = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(file)) ?? ".", relative);
            if (!System.IO.File.Exists(source))
                throw ConfigBinder.Error(file, reference.Node, reference.Key, $"policy file \"{relative}\" not found (looked at {source})");
            policy = PolicyFile.Load(source);
            at = reference;
        }
        else
        {
            policy = PolicyFile.Parse(TomlTables.Slice(text, policyTables), file);
        }
        // A scenario's files are virtual: the simulator has no device and inode for them, so a
        // rule by inode could never match there while it might on a real host. Refuse it rather
        // than let the two backends disagree.
        if (policy.InodeRules.Count > 0)
        {
            var rule = policyTables.FirstOrDefault(t => TomlTables.NameOf(t) == "rule");
            throw ConfigBinder.Error(file, (SyntaxNodeBase?)at?.Node ?? rule, at?.Key ?? "rule",
                "inode rules ([[rule]]) cannot apply to a scenario's files, which have no inode; write a [[file]] rule with the path");
        }
        return (policy, source);
    }

    private static ScenarioAction ActionFrom(string file, TableSyntaxBase table, Dictionary<string, ConfigValue> v)
    {
        ConfigValue Required(string key) => v.TryGetValue(key, out var value) ? value
            : throw ConfigBinder.Error(file, table, $"action.{key}", $"missing; every [[action]] needs {key}");

        string name = Required("name").NonEmptyString();
        if (!name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.'))
            throw ConfigBinder.Error(file, v["name"].Node, "action.name", $"\"{name}\": use letters, digits, '_', '-' and '.' only");
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
                throw ConfigBinder.Error(file, extra.Node, extra.Key, $"does not apply to a {kind.Word()} action");
        }

        var action = new ScenarioAction
        {
            Name = name,
            Kind = kind,
            Source = $"{Path.GetFileName(file)}:{table.Span.Start.Line + 1}",
            Description = v.TryGetValue("description", out var d) ? d.String() : "",
            Syscalls = v.TryGetValue("syscalls", out var sc) ? sc.Int(1, 1_000_000) : ActionKinds.DefaultSyscalls(kind),
            FailProb = v.TryGetValue("fail_prob", out var fp) ? fp.Number(file, 0, 1) : 0,
            Bonus = v.TryGetValue("bonus", out var b) ? b.Number(file) : 0,
            Satisfies = v.TryGetValue("satisfies", out var s) ? s.StringArray() : [],
        };
        if (kind.IsFile())
        {
            string path = Required("path").NonEmptyString();
            if (!path.StartsWith('/'))
                throw ConfigBinder.Error(file, v["path"].Node, "action.path", $"must be absolute (start with '/'), found \"{path}\"");
            action = action with { Path = path, Args = v.TryGetValue("args", out var args) ? args.StringArray() : [] };
        }
        else if (kind.IsNetwork())
        {
            var addressValue = Required("address");
            if (!System.Net.IPAddress.TryParse(addressValue.NonEmptyString(), out var address))
                throw ConfigBinder.Error(file, addressValue.Node, addressValue.Key, $"\"{addressValue.String()}\" is not an IP address (e.g. \"203.0.113.7\" or \"::1\")");
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

    private static TaskSpec TaskFrom(string file, Dictionary<string, ConfigValue>? v)
    {
        if (v is null)
            return new TaskSpec();
        return new TaskSpec
        {
            Reward = v.TryGetValue("reward", out var r) ? r.Number(file) : 10.0,
            Requires = v.TryGetValue("requires", out var req) ? req.StringArray() : [],
            StepCost = v.TryGetValue("step_cost", out var c) ? c.Number(file, 0) : 0,
        };
    }

    private static RewardSpec RewardFrom(string file, Dictionary<string, ConfigValue>? v)
    {
        if (v is null)
            return new RewardSpec();
        var defaults = new RewardSpec();
        return new RewardSpec
        {
            SlowdownPerMs = v.TryGetValue("slowdown_per_ms", out var s) ? s.Number(file, 0) : defaults.SlowdownPerMs,
            Denial = v.TryGetValue("denial", out var d) ? d.Number(file, 0) : defaults.Denial,
            Kill = v.TryGetValue("kill", out var k) ? k.Number(file, 0) : defaults.Kill,
        };
    }

    // Checks across tables: unique names, references to actions that exist, a way to finish.
    private static void Check(string file, Scenario scenario, List<(TableSyntaxBase Table, Dictionary<string, ConfigValue> Values)> tables,
        Dictionary<string, ConfigValue>? task)
    {
        if (scenario.Actions.Count == 0)
            throw new ConfigException(file, 0, 0, "action", "the scenario has no [[action]]; an agent needs at least one, including a submit");
        var seen = new Dictionary<string, int>();
        for (int i = 0; i < scenario.Actions.Count; i++)
        {
            var name = scenario.Actions[i].Name;
            if (seen.TryGetValue(name, out int first))
                throw ConfigBinder.Error(file, tables[i].Values["name"].Node, "action.name", $"\"{name}\" is already the name of the action at line {tables[first].Table.Span.Start.Line + 1}");
            seen[name] = i;
        }
        if (!scenario.Actions.Any(a => a.Kind == ActionKind.Submit))
            throw ConfigBinder.Error(file, tables[^1].Table, "action.kind", "no action has kind = \"submit\"; the episode's task ends with one");

        var requires = scenario.Task.Requires;
        for (int i = 0; i < requires.Count; i++)
        {
            int index = scenario.IndexOf(requires[i]);
            if (index < 0 || scenario.Actions[index].Kind is ActionKind.Submit or ActionKind.Wait)
                throw ConfigBinder.Error(file, task!["requires"].Node, "task.requires",
                    index < 0 ? $"element {i + 1}: no action is called \"{requires[i]}\"{Hint(requires[i], seen.Keys)}"
                              : $"element {i + 1}: \"{requires[i]}\" is a {scenario.Actions[index].Kind.Word()} action; require the operations the task needs");
        }
        for (int i = 0; i < scenario.Actions.Count; i++)
        {
            foreach (var target in scenario.Actions[i].Satisfies)
            {
                if (!requires.Contains(target))
                    throw ConfigBinder.Error(file, tables[i].Values["satisfies"].Node, "action.satisfies",
                        $"\"{target}\" is not a requirement of the task (task.requires: [{string.Join(", ", requires.Select(r => $"\"{r}\""))}])");
            }
        }
    }

    private static string Hint(string name, IEnumerable<string> names) =>
        ConfigBinder.Closest(name, names) is { } close ? $" (did you mean '{close}'?)" : "";
}
