using System.CommandLine;
using Mis.Server.Hosting;

namespace Mis.Cli.Commands;

/// <summary><c>mis enforcer [CONFIG]</c>: MIS as a long-lived policy engine steered over gRPC.</summary>
public static class EnforcerCommand
{
    internal static Command Create()
    {
        var config = new Argument<FileInfo?>("CONFIG")
        {
            Arity = ArgumentArity.ZeroOrOne,
            Description = "config.toml to run with: [grpc] (enabled = true is required; bind_address, port, unix_socket_path, unix_socket_mode and " +
                          "unix_socket_group, TLS and mutual TLS, max_message_bytes), [access] (admin_group, user_policy_files, tcp_callers), [metrics], [paths] state_dir and policy_files, [logging] level, format and audit_log_path, " +
                          "[watchdog] kill_grace_ms, [policy] max_rule_ttl_secs and the online anomaly scorer (anomaly_model, anomaly_threshold, " +
                          "kill_on_anomaly, anomaly_monitor_by_default), [defcon]. Default: $MIS_CONFIG if set, else the built-in defaults " +
                          "(which leave gRPC off). config/config.toml documents every key.",
        };
        var command = new Command("enforcer",
            "Run the enforcer as a long-lived policy engine that other tools steer over gRPC (mis.policy.v1.PolicyService in " +
            "proto/mis/policy/v1/policy.proto, server reflection on): start workloads in MIS-managed cgroups, add rules with TTLs, " +
            "reload the policy files, read stats, kill, set learning mode and DEFCON, watch events. Listens on 127.0.0.1 by default, " +
            "optionally on a Unix socket (0600, or opened to a group or every local user with [grpc] unix_socket_mode: the node " +
            "daemon of deploy/systemd, where [access] and each caller's SO_PEERCRED decide what it may do), with TLS or mutual TLS; " +
            "Prometheus metrics on [metrics]; an audit line per RPC. " +
            "Needs root. SIGTERM or SIGINT stops it cleanly (waiting calls answered UNAVAILABLE, workloads killed, cgroups removed, " +
            "programs detached, exit 0); under systemd it notifies READY=1 and STOPPING=1. " +
            "Exit 1 when the host refuses (not root, another enforcer holds [paths] state_dir, a port taken), 2 when the " +
            "configuration or a file it names is wrong.")
        {
            config,
        };
        command.SetAction((result, cancel) =>
        {
            if (!OperatingSystem.IsLinux())
            {
                Console.Error.WriteLine("mis enforcer: runs on Linux only (cgroup v2, BPF, seccomp)");
                return Task.FromResult(1);
            }
            string? env = Environment.GetEnvironmentVariable("MIS_CONFIG");
            string? path = result.GetValue(config)?.FullName ?? (string.IsNullOrEmpty(env) ? null : env);
            // The model libraries (TorchSharp, ML.NET) stay out of the server: the CLI hands it the loader.
            // It also runs kernel-backend episodes for callers that are not root (mis gym run --enforcer).
            return EnforcerProgram.RunAsync(path, Console.Error, modelPath => Mis.Anomaly.ModelFile.Load(modelPath), [Mis.Gym.Server.KernelEpisodes.Hosted]);
        });
        return command;
    }
}
