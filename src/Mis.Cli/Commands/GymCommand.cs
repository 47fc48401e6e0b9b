using System.CommandLine;
using Mis.Enforcer.Configuration;
using Mis.Bench.Gym;
using Mis.Bench.Suite;
using Mis.Gym.Checking;
using Mis.Gym.Envs;
using Mis.Gym.Experiments;
using Mis.Gym.Scenarios;
using Mis.Gym.Server;

namespace Mis.Cli.Commands;

/// <summary><c>mis gym</c>: the Gymnasium-style environments: check them, measure the simulator.</summary>
public static class GymCommand
{
    internal static Command Create() => new("gym",
        "Gymnasium-style RL environments built from scenarios (experiments/scenarios/*.toml): actions under a policy, " +
        "DEFCON feedback as reward.")
    {
        Check(),
        Bench(),
        Serve(),
        RunExperiment(),
    };

    // `mis gym run FILE`: an experiment (the runner, resume and report are in Mis.Gym.Experiments/Reports).
    private static Command RunExperiment()
    {
        var file = new Argument<FileInfo>("FILE") { Description = "An experiment file (experiments/*.toml)." };
        var outDir = new Option<DirectoryInfo?>("--out") { HelpName = "DIR", Description = "Run directory (default: runs/NAME). Rerunning into it resumes: complete runs are skipped, partial ones continue from their checkpoint." };
        var episodes = new Option<int?>("--episodes") { HelpName = "N", Description = "Episodes per (config, seed), overriding the file." };
        var seeds = new Option<int?>("--seeds") { HelpName = "N", Description = "Run seeds 0..N-1, overriding the file." };
        var shard = new Option<string?>("--shard")
        {
            HelpName = "I/N",
            Description = "Run only shard I of N (0-based, 0 <= I < N) of a sweep spread over machines: of the (config, seed) runs in " +
                          "experiment order (config by config, each config's seeds in turn) those whose number modulo N is I, round-robin " +
                          "so every shard gets a mix of configs. All shards use the same --out on a shared filesystem and never write the " +
                          "same file; rerunning a shard resumes it. A shard writes no report: when all have finished, mis report DIR merges " +
                          $"them. Without --shard, a Slurm array task takes I = {ShardSelection.SlurmTaskId} - {ShardSelection.SlurmTaskMin}, " +
                          $"N = {ShardSelection.SlurmTaskCount}, and a Kubernetes Indexed Job pod I = {ShardSelection.KubernetesIndex}, " +
                          $"N = {ShardSelection.ShardCount} (which the Job template sets to its completions); --shard 0/1 runs everything.",
        };
        var enforcer = EnforcerOption();
        var command = new Command("run",
            "Run an experiment: every config of its sweep grid with every seed, each step written to trajectory.csv/.jsonl, " +
            "each episode to episodes.csv and a TensorBoard events file (tensorboard/), then summary.json and the report " +
            "(report.md, report.html, figures/); a shard (--shard I/N, or a Slurm array task or Indexed Job pod) runs only its " +
            "share and no report. Ctrl+C stops at the next episode; rerun to resume. Exit status 0 when all runs completed, 1 " +
            "when some failed, 2 for a bad file, backend, --shard or a run directory of another experiment, 130 when interrupted.")
        {
            file, outDir, episodes, seeds, shard, enforcer,
        };
        command.SetAction(result =>
        {
            if (!UseEnforcer(result, enforcer, "mis gym run"))
                return ExperimentConsole.BadInput;
            var experiment = ExperimentConsole.Load("mis gym run", result.GetValue(file)!.FullName);
            if (experiment is null)
                return ExperimentConsole.BadInput;
            if (result.GetValue(episodes) is { } n)
            {
                if (n < 1)
                    return Usage("--episodes must be at least 1");
                experiment = experiment.WithEpisodes(n);
            }
            if (result.GetValue(seeds) is { } k)
            {
                if (k < 1)
                    return Usage("--seeds must be at least 1");
                experiment = experiment.WithSeedCount(k);
            }
            ShardChoice part;
            try
            {
                part = ShardSelection.Resolve(result.GetValue(shard), Environment.GetEnvironmentVariable);
            }
            catch (FormatException e)
            {
                return Usage(e.Message);
            }
            string dir = result.GetValue(outDir)?.FullName ?? Path.Combine("runs", experiment.Name);
            return ExperimentConsole.Run("mis gym run", experiment, dir, Console.Out, part);
        });
        return command;

        static int Usage(string message)
        {
            Console.Error.WriteLine($"mis gym run: {message}");
            return ExperimentConsole.BadInput;
        }
    }

    private static Command Check()
    {
        var backend = new Option<string>("--backend")
        {
            Description = "Backend to check: sim (the in-process simulator) or kernel (the real enforcer: root, or --enforcer).",
            DefaultValueFactory = _ => MisGym.Sim,
        };
        backend.AcceptOnlyFromAmong([.. MisGym.Backends]);
        var dir = ScenariosOption();
        var enforcer = EnforcerOption();
        var command = new Command("check",
            "Run the env checker (spaces, reset/step contract, seeding, determinism, step after the end, close) on every " +
            "scenario and print a table. Exit status 0 when all pass, 1 when a check fails, 2 when a scenario or the backend cannot be used.")
        {
            backend, dir, enforcer,
        };
        command.SetAction(result =>
        {
            if (!UseEnforcer(result, enforcer, "mis gym check"))
                return 2;
            string name = result.GetValue(backend)!;
            var files = ScenarioFiles(result.GetValue(dir));
            if (files is null)
                return 2;
            var rows = new List<(string Scenario, string Passed, string Failed, string Detail)>();
            int exit = 0;
            foreach (var file in files)
            {
                Scenario scenario;
                try
                {
                    scenario = ScenarioFile.Load(file);
                    if (!MisGym.BackendsFor(scenario).Contains(name))
                    {
                        rows.Add((scenario.Name, "-", "-", "skipped: a command workload ([workload]) needs the kernel backend"));
                        continue;
                    }
                    if (scenario is CommandScenario && NodeDaemon.Address is not null)
                    {
                        rows.Add((scenario.Name, "-", "-", "skipped: the node daemon runs action scenarios; a command workload ([workload]) runs in-process, as root"));
                        continue;
                    }
                    // Make one up front: an unavailable backend is a clear message, not eight failed checks.
                    MisGym.Make(scenario, name).Close();
                }
                catch (ConfigException e)
                {
                    rows.Add((Path.GetFileNameWithoutExtension(file), "-", "-", e.Message));
                    exit = 2;
                    continue;
                }
                catch (BackendUnavailableException e)
                {
                    Console.Error.WriteLine($"mis gym check: backend {name}: {e.Message}");
                    return 2;
                }
                // The kernel backend is checked with the simulator's slowdown model: the measured
                // slowdown varies by a few syscalls between runs, which the exact determinism check
                // would flag; DEFCON, violations, denials and kills are the kernel's either way.
                var report = EnvChecker.Check(() => name == MisGym.Kernel ? MisGym.MakeKernelModelled(scenario) : MisGym.Make(scenario, name),
                    // A command workload is a real program: its timing is real, so determinism is not asked of it.
                    new EnvCheckOptions { MaxSteps = name == MisGym.Kernel ? 200 : 10_000, Nondeterministic = !scenario.Repeatable });
                var failed = report.Results.Where(r => r.Status == CheckStatus.Failed).ToList();
                string detail = failed.Count > 0 ? string.Join("; ", failed.Select(f => $"{f.Name}: {f.Detail}"))
                    : report.Skipped > 0 ? $"ok ({report.Skipped} skipped: {string.Join("; ", report.Results.Where(r => r.Status == CheckStatus.Skipped).Select(r => r.Name))})"
                    : "ok";
                rows.Add((scenario.Name, $"{report.Passed}/{report.Results.Count}", failed.Count.ToString(), detail));
                if (failed.Count > 0 && exit == 0)
                    exit = 1;
            }
            Console.Write(TextTable.Render(["scenario", "backend", "passed", "failed", "detail"],
                rows.Select(row => (IReadOnlyList<string>)[row.Scenario, name, row.Passed, row.Failed, row.Detail])));
            return exit;
        });
        return command;
    }

    private static Command Bench()
    {
        var scenario = new Option<string>("--scenario")
        {
            HelpName = "NAME|FILE",
            Description = "Scenario to step: a name in the scenarios directory or a file (default: data-shortcut).",
            DefaultValueFactory = _ => "data-shortcut",
        };
        var envs = new Option<int>("--envs") { Description = "Sub-environments of the vector envs (default 16).", DefaultValueFactory = _ => 16 };
        var seconds = new Option<double>("--seconds") { Description = "Measuring time per line, after a short warm-up (default 2).", DefaultValueFactory = _ => 2.0 };
        var dir = ScenariosOption();
        var command = new Command("bench",
            "Measure simulator throughput in steps per second with random actions: one env, a synchronous vector env on one " +
            "thread, an asynchronous one with a thread per env, and the sim backend alone. Steps per CPU-second is the per-core " +
            "rate, unaffected by other processes competing for the cores.")
        {
            scenario, envs, seconds, dir,
        };
        command.SetAction(result =>
        {
            string which = result.GetValue(scenario)!;
            int numEnvs = result.GetValue(envs);
            var duration = TimeSpan.FromSeconds(result.GetValue(seconds));
            if (numEnvs < 1 || duration <= TimeSpan.Zero)
            {
                Console.Error.WriteLine("mis gym bench: --envs must be at least 1 and --seconds positive");
                return 2;
            }
            string path = File.Exists(which) ? which : Path.Combine(result.GetValue(dir)?.FullName ?? DefaultScenarioDir(), which + ".toml");
            ActionScenario loaded;
            try
            {
                loaded = ScenarioFile.LoadActions(path, "mis gym bench");
            }
            catch (ConfigException e)
            {
                Console.Error.WriteLine($"mis gym bench: {e.Message}");
                return 2;
            }
            Console.WriteLine($"mis gym bench: scenario {loaded.Name} ({loaded.Actions.Count} actions), sim backend, {Environment.ProcessorCount} cores");
            foreach (var measure in new Func<BenchResult>[]
                     {
                         () => GymBench.Single(loaded, duration),
                         () => GymBench.Vector(loaded, numEnvs, async: false, duration),
                         () => GymBench.Vector(loaded, numEnvs, async: true, duration),
                         () => GymBench.Backend(loaded, duration),
                     })
            {
                var r = measure();
                Console.WriteLine($"  {r.What,-50} {r.StepsPerSecond / 1e6,7:F2} M steps/s  {r.StepsPerCpuSecond / 1e6,7:F2} M steps/CPU-s  " +
                                  $"({r.Steps:N0} steps, {r.Elapsed.TotalSeconds:F2} s wall, {r.Cpu.TotalSeconds:F2} s CPU)");
            }
            return 0;
        });
        return command;
    }

    /// <summary><c>--enforcer unix:PATH</c>: kernel-backend episodes in the node daemon.</summary>
    internal static Option<string?> EnforcerOption() => new("--enforcer")
    {
        HelpName = "unix:PATH",
        Description = "Run kernel-backend episodes in the node daemon (mis enforcer) on this Unix socket, as yourself and without root, " +
                      $"e.g. {NodeDaemon.DefaultAddress}. Default: ${NodeDaemon.EnvironmentVariable} if set, else in this process (which needs root).",
    };

    /// <summary>Makes <c>--enforcer</c>, when given, this process's daemon; false (after saying why) when it is not <c>unix:PATH</c>.</summary>
    internal static bool UseEnforcer(ParseResult result, Option<string?> option, string command)
    {
        if (result.GetValue(option) is not { } address)
            return true;
        try
        {
            NodeDaemon.Use(address);
            return true;
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"{command}: --enforcer: {e.Message}");
            return false;
        }
    }

    private static Command Serve()
    {
        var listen = new Option<string>("--listen")
        {
            HelpName = "HOST:PORT|unix:PATH",
            Description = "Where to listen: an IP address and port (IPv6 in brackets; port 0 picks a free one, printed when ready) or a " +
                          "Unix socket, created 0600. The default listens on this machine only.",
            DefaultValueFactory = _ => GymListenAddress.Default,
        };
        var dir = ScenariosOption();
        dir.Description = "Directory of scenario TOML files clients may name (default: experiments/scenarios in the repository). " +
                          "A client names a scenario by its path under it without .toml; nothing outside it can be named.";
        var allow = new Option<string>("--backend-allow")
        {
            HelpName = "sim,kernel",
            Description = "Backends clients may ask for, comma-separated. kernel runs each episode's actions as a real " +
                          "process in a MIS-managed cgroup under the BPF enforcer: it needs root (a client can then start such processes), " +
                          "or --enforcer, which runs them in the node daemon as the account that runs this server.",
            DefaultValueFactory = _ => MisGym.Sim,
        };
        var maxEnvs = new Option<int>("--max-envs")
        {
            HelpName = "N",
            Description = "Open environments at most, over all clients; a Make beyond it fails with RESOURCE_EXHAUSTED.",
            DefaultValueFactory = _ => GymServerOptions.DefaultMaxEnvs,
        };
        var maxVector = new Option<int>("--max-vector-envs")
        {
            HelpName = "N",
            Description = "Environments one VectorReset may make at most (a vector counts as one against --max-envs); beyond it INVALID_ARGUMENT.",
            DefaultValueFactory = _ => GymServerOptions.DefaultMaxVectorEnvs,
        };
        var idle = new Option<int>("--idle-timeout")
        {
            HelpName = "SECONDS",
            Description = "Close an environment no call has used for this long (a client that died without Close would otherwise " +
                          "hold it, and for the kernel backend a cgroup and a process, until the server stops); its id is then " +
                          "NOT_FOUND, saying why. 0 keeps environments until Close or shutdown.",
            DefaultValueFactory = _ => (int)GymServerOptions.DefaultIdleTimeout.TotalSeconds,
        };
        var gone = new Option<int>("--client-gone-grace")
        {
            HelpName = "SECONDS",
            Description = "When the connection a client made an environment on closes (the client went away without Close), close the " +
                          "environment once this many seconds pass with no call on it (a client that reconnects and goes on keeps it); " +
                          "for the kernel backend that kills the episode's process and removes its cgroup. 0: only --idle-timeout applies.",
            DefaultValueFactory = _ => (int)GymServerOptions.DefaultClientGoneGrace.TotalSeconds,
        };
        var enforcer = EnforcerOption();
        var command = new Command("serve",
            "Serve MIS environments over gRPC (mis.gym.v1.GymService in proto/mis/gym/v1/gym.proto, server reflection on), so RL code " +
            "in any language can make, reset, step and close them; clients/python/mis_gym.py is a Python client shaped like a " +
            "Gymnasium env, MisVectorEnv its vectorised one. The Gymnasium contract holds: terminated and truncated kept apart; a single environment: " +
            "no autoreset (the client resets); VectorStep autoresets as Gymnasium's vector envs do (next step). " +
            "SIGTERM or SIGINT stops it: calls in flight finish, every open environment is closed, exit 0. Exit 1 when the address " +
            "cannot be used, 2 when an option is wrong.")
        {
            listen, dir, allow, maxEnvs, maxVector, idle, gone, enforcer,
        };
        command.SetAction((result, cancel) =>
        {
            if (!UseEnforcer(result, enforcer, "mis gym serve"))
                return Task.FromResult(2);
            GymListenAddress address;
            try
            {
                address = GymListenAddress.Parse(result.GetValue(listen)!);
            }
            catch (FormatException e)
            {
                Console.Error.WriteLine($"mis gym serve: --listen {e.Message}");
                return Task.FromResult(2);
            }
            int max = result.GetValue(maxEnvs);
            if (max < 1)
            {
                Console.Error.WriteLine($"mis gym serve: --max-envs {max}: allow at least 1 environment");
                return Task.FromResult(2);
            }
            int vectorMax = result.GetValue(maxVector);
            if (vectorMax < 1)
            {
                Console.Error.WriteLine($"mis gym serve: --max-vector-envs {vectorMax}: allow at least 1 environment per vector");
                return Task.FromResult(2);
            }
            int idleSeconds = result.GetValue(idle);
            if (idleSeconds < 0)
            {
                Console.Error.WriteLine($"mis gym serve: --idle-timeout {idleSeconds}: give seconds, or 0 for no limit");
                return Task.FromResult(2);
            }
            int goneSeconds = result.GetValue(gone);
            if (goneSeconds < 0)
            {
                Console.Error.WriteLine($"mis gym serve: --client-gone-grace {goneSeconds}: give seconds, or 0 to rely on --idle-timeout alone");
                return Task.FromResult(2);
            }
            var options = new GymServerOptions
            {
                IdleTimeout = TimeSpan.FromSeconds(idleSeconds),
                ClientGoneGrace = TimeSpan.FromSeconds(goneSeconds),
                Listen = address,
                ScenarioDirectory = result.GetValue(dir)?.FullName ?? DefaultScenarioDir(),
                AllowedBackends = [.. result.GetValue(allow)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Distinct()],
                MaxEnvs = max,
                MaxVectorEnvs = vectorMax,
            };
            return GymServeProgram.RunAsync(options, Console.Error);
        });
        return command;
    }

    private static Option<DirectoryInfo?> ScenariosOption() => new("--scenarios")
    {
        HelpName = "DIR",
        Description = "Directory of scenario TOML files (default: experiments/scenarios in the repository).",
    };

    private static string DefaultScenarioDir() => Path.Combine(RepoRoot.Find(), "experiments", "scenarios");

    private static string[]? ScenarioFiles(DirectoryInfo? dir)
    {
        string path = dir?.FullName ?? DefaultScenarioDir();
        var files = Directory.Exists(path) ? Directory.GetFiles(path, "*.toml").Order().ToArray() : [];
        if (files.Length > 0)
            return files;
        Console.Error.WriteLine($"mis gym: no scenario files (*.toml) in {path}");
        return null;
    }
}
